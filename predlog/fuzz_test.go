package predlog

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes to the value decoder (and the key
// parser): it must never panic nor allocate beyond the input's size, and a
// value it accepts must encode again to one that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	for _, comp := range []ValueCompression{CompressNone, CompressZstd} {
		var scratch []byte
		v, err := encodeValue(nil, mixedRecord("seed", RoleShadow), comp, DefaultMaxRecordBytes, &scratch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
		v, _ = encodeValue(nil, newDemoGen(1).next(), comp, DefaultMaxRecordBytes, &scratch)
		f.Add(v)
	}
	f.Add([]byte{formatRaw})
	f.Add(appendPredKey(nil, "fraud", 42))
	f.Fuzz(func(t *testing.T, v []byte) {
		parsePredKey(v)
		var (
			r, own  Record
			scratch []byte
		)
		err := decodeValue(&r, v, &scratch, false)
		if err2 := decodeValue(&own, v, &scratch, true); (err == nil) != (err2 == nil) {
			t.Fatalf("own and aliased decodes disagree: %v vs %v", err, err2)
		}
		if err != nil {
			return
		}
		r.Model, r.Version = "m", "v"
		again, err := encodeValue(nil, &r, CompressNone, 64<<20, &scratch)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v\n%+v", err, r)
		}
		var back Record
		if err := decodeValue(&back, again, &scratch, true); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		back.Model, back.Version = "m", "v"
		sameRecord(t, &back, &r)
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzDecodeRecord from the
// encoder when PREDLOG_WRITE_SEEDS is set (after a format change).
// FuzzBlock reads arbitrary bytes as a block, plain or compressed: errors,
// never a panic or an allocation beyond the block bound.
func FuzzBlock(f *testing.F) {
	g := newDemoGen(3)
	var recs []*Record
	for range 20 {
		r := cloneRecord(g.next())
		recs = append(recs, &r)
	}
	f.Add(blockOf(recs))
	f.Add(blockOf(recs[:1]))
	f.Add([]byte{0, blockS2, 1, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var br blockReader
		if br.open(v, 1<<40) != nil {
			return
		}
		var r Record
		var scratch []byte
		for {
			_, _, val, ok, err := br.Next()
			if err != nil || !ok {
				return
			}
			_ = decodeValue(&r, val, &scratch, false)
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PREDLOG_WRITE_SEEDS") == "" { // the record seeds carry times: rewriting them changes them
		t.Skip("set PREDLOG_WRITE_SEEDS=1 to rewrite the fuzz seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	var scratch []byte
	write := func(name string, v []byte) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(v)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, comp := range []ValueCompression{CompressNone, CompressZstd} {
		v, _ := encodeValue(nil, mixedRecord("seed-mixed", RoleCanary), comp, DefaultMaxRecordBytes, &scratch)
		write("mixed-"+comp.String(), v)
		v, _ = encodeValue(nil, newDemoGen(2).next(), comp, DefaultMaxRecordBytes, &scratch)
		write("demo-"+comp.String(), v)
	}
	v, _ := encodeValue(nil, newDemoGen(3).next(), CompressNone, DefaultMaxRecordBytes, &scratch)
	write("truncated", v[:len(v)/2])
	big := append([]byte(nil), v...)
	big[len(big)-130] = 0xff // a shape dimension made huge
	write("huge-shape", big)
	dir = filepath.Join("testdata", "fuzz", "FuzzBlock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := newDemoGen(4)
	var recs []*Record
	for range 30 {
		r := cloneRecord(g.next())
		recs = append(recs, &r)
	}
	b := blockOf(recs)
	write("compressed", b)
	write("compressed-truncated", b[:len(b)/2])
	write("plain", blockOf(recs[:1]))
}
