package predlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBlocks fills blocks of mixed versions (small blocks, so there are
// many, and groups bigger than one block), then checks that Get, Scan by
// version and time, and exports resumed from every cursor agree with the
// append order, across a restart.
func TestBlocks(t *testing.T) {
	old := maxBlockBytes
	maxBlockBytes = 1 << 10
	defer func() { maxBlockBytes = old }()
	c := testConfig(t)
	l := openLog(t, c)
	defer func() { _ = closeLog(t, l) }()
	g := newDemoGen(7)
	var want []Record
	for i := 0; i < 300; i++ {
		r := g.next()
		r.Version = fmt.Sprint(1 + i%3)
		if i%7 == 0 {
			r.Model = "other"
		} else {
			r.Model = "fraud"
		}
		if i%50 == 49 {
			if err := l.AppendDurable(r); err != nil {
				t.Fatal(err)
			}
		} else if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		want = append(want, cloneRecord(r))
	}
	for pass := 0; pass < 2; pass++ {
		var all []Record
		_, err := l.Export("fraud", "", false, 0, func(row *Row) error {
			all = append(all, cloneRecord(&row.Record))
			all[len(all)-1].Stamp = row.Record.Stamp
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wantFraud []Record
		for i := range want {
			if want[i].Model == "fraud" {
				wantFraud = append(wantFraud, want[i])
			}
		}
		if len(all) != len(wantFraud) {
			t.Fatalf("exported %d rows, want %d", len(all), len(wantFraud))
		}
		for i := range all {
			w := wantFraud[i]
			w.Stamp = all[i].Stamp
			sameRecord(t, &all[i], &w)
			if i > 0 && all[i].Stamp <= all[i-1].Stamp {
				t.Fatalf("row %d: stamp %d after %d", i, all[i].Stamp, all[i-1].Stamp)
			}
		}
		// Resume from every cursor, a few rows at a time.
		var ids []string
		cur := Cursor("")
		for {
			n := 0
			next, err := l.Export("fraud", cur, false, 3, func(row *Row) error {
				ids = append(ids, row.Record.RequestID)
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			cur = next
		}
		var wantIDs []string
		for i := range all {
			wantIDs = append(wantIDs, all[i].RequestID)
		}
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("resumed export gave %d ids, want %d", len(ids), len(wantIDs))
		}
		// Scan a version over a window that starts and ends inside blocks.
		from, to := all[10].Stamp, all[200].Stamp
		var got []string
		err = l.Scan("fraud", "2", time.Unix(0, from), time.Unix(0, to), func(r *Record) error {
			if r.Version != "2" || r.Stamp < from || r.Stamp >= to {
				t.Fatalf("scan gave version %s stamp %d", r.Version, r.Stamp)
			}
			got = append(got, r.RequestID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wantScan []string
		for _, r := range all[10:200] {
			if r.Version == "2" {
				wantScan = append(wantScan, r.RequestID)
			}
		}
		if !slices.Equal(got, wantScan) {
			t.Fatalf("scan gave %v\nwant %v", got, wantScan)
		}
		for i := range want {
			r, err := l.Get(want[i].RequestID)
			if err != nil {
				t.Fatalf("Get(%s): %v", want[i].RequestID, err)
			}
			w := want[i]
			w.Stamp = r.Stamp
			sameRecord(t, &r, &w)
		}
		if err := closeLog(t, l); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, c)
	}
}

// blockOf returns the block of the demo records recs, as the committer
// builds it.
func blockOf(recs []*Record) []byte {
	var raw, prev, scratch, enc []byte
	for _, r := range recs {
		enc, _ = encodeValue(enc[:0], r, CompressNone, DefaultMaxRecordBytes, &scratch)
		shared := sharedPrefix(prev, enc)
		raw = append(raw, byte(len(r.Version)))
		raw = append(raw, r.Version...)
		raw = binary.AppendUvarint(raw, uint64(shared))
		raw = binary.AppendUvarint(raw, uint64(len(enc)-shared))
		raw = append(raw, enc[shared:]...)
		prev = append(prev[:0], enc...)
	}
	var packed []byte
	return appendBlock(nil, len(recs), raw, &packed)
}

// TestCompressedBlocks: a block of similar records is stored compressed and
// reads back the same; one that does not compress is stored plain; a
// damaged compressed block is ErrCorrupt (a flipped bit inside the S2
// stream may decode to other bytes: Pebble's block checksums catch those).
func TestCompressedBlocks(t *testing.T) {
	g := newDemoGen(31)
	var recs []*Record
	var want []Record
	for range 100 {
		r := cloneRecord(g.next())
		recs = append(recs, &r)
		want = append(want, r)
	}
	v := blockOf(recs)
	if v[0] != 0 || v[1] != blockS2 {
		t.Fatalf("a block of 100 demo records was stored plain")
	}
	read := func(v []byte) ([]Record, error) {
		var br blockReader
		if err := br.open(v, 1000); err != nil {
			return nil, err
		}
		var out []Record
		for {
			_, _, val, ok, err := br.Next()
			if err != nil || !ok {
				return out, err
			}
			var r Record
			var scratch []byte
			if err := decodeValue(&r, val, &scratch, true); err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	got, err := read(v)
	if err != nil || len(got) != len(want) {
		t.Fatalf("read %d records, %v", len(got), err)
	}
	for i := range got {
		got[i].Model, got[i].Version = want[i].Model, want[i].Version // they live in the key and the entry
		sameRecord(t, &got[i], &want[i])
	}
	t.Logf("100 demo records: %d bytes compressed", len(v))

	noisy := mixedRecord("noise", RoleChampion)
	noisy.Inputs[4].Data = make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noisy.Inputs[4].Data {
		noisy.Inputs[4].Data[i] = byte(rng.Uint32())
	}
	if p := blockOf([]*Record{noisy}); p[0] == 0 {
		t.Fatalf("random bytes were stored compressed")
	}

	for _, bad := range [][]byte{
		{0},
		{0, 9, 1, 1}, // unknown codec
		append([]byte{0, blockS2, 100}, v[3:len(v)/2]...), // truncated
		append([]byte{0, blockS2, 101}, v[3:]...),         // one record short
		append([]byte{0, blockS2, 99}, v[3:]...),          // one record too many
	} {
		if _, err := read(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("damaged block %x...: %v, want ErrCorrupt", bad[:min(len(bad), 8)], err)
		}
	}
}

// TestLongestVersion: a version name of the longest length allowed (255
// bytes, a full length byte) is stored and read back.
func TestLongestVersion(t *testing.T) {
	l := openLog(t, testConfig(t))
	r := cloneRecord(newDemoGen(32).next())
	r.Version = strings.Repeat("v", maxName)
	if err := l.AppendDurable(&r); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(r.RequestID)
	if err != nil || got.Version != r.Version {
		t.Fatalf("Get = %q, %v", got.Version, err)
	}
}
