package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogCodecRoundTrip(t *testing.T) {
	f := func(l raft.Log) {
		t.Helper()
		b := appendLog(nil, &l)
		got := raft.Log{Data: []byte("stale"), Extensions: []byte("stale"), AppendedAt: time.Now()}
		if err := decodeLog(b, &got); err != nil {
			t.Fatalf("decode %+v: %v", l, err)
		}
		if !got.AppendedAt.Equal(l.AppendedAt) || got.AppendedAt.IsZero() != l.AppendedAt.IsZero() {
			t.Fatalf("AppendedAt = %v, want %v", got.AppendedAt, l.AppendedAt)
		}
		got.AppendedAt, l.AppendedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, l) { // DeepEqual tells nil from empty slices
			t.Fatalf("round trip = %#v, want %#v", got, l)
		}
		// Appending to dst keeps what was there.
		if b2 := appendLog([]byte("prefix"), &l); !bytes.HasPrefix(b2, []byte("prefix")) {
			t.Fatal("appendLog overwrote dst")
		}
	}
	now := time.Now() // with a monotonic reading and a location
	f(raft.Log{})
	f(raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte{1, 2, 3}})
	f(raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogType(255)})
	f(raft.Log{Index: 7, Term: 3, Type: raft.LogCommand, Data: []byte(`{"v":1}`), Extensions: []byte("ext"), AppendedAt: now})
	f(raft.Log{Index: 8, Data: []byte{}, Extensions: []byte{}})
	f(raft.Log{Index: 9, Extensions: []byte("only extensions")})
	f(raft.Log{Index: 10, AppendedAt: time.Unix(0, 0)})                          // the epoch is not the zero time
	f(raft.Log{Index: 11, AppendedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}) // a nanosecond after zero
	f(raft.Log{Index: 12, AppendedAt: time.Date(3000, 1, 1, 0, 0, 0, 999999999, time.UTC)})
	f(raft.Log{Index: 13, AppendedAt: time.Date(1500, 6, 1, 0, 0, 0, 5, time.FixedZone("x", 3600))})
	f(raft.Log{Index: 14, Data: bytes.Repeat([]byte{0xff}, 1<<16)})
}

func TestLogCodecDecodeCopies(t *testing.T) {
	b := appendLog(nil, &raft.Log{Index: 1, Data: []byte("data"), Extensions: []byte("ext")})
	var l raft.Log
	if err := decodeLog(b, &l); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(l.Data) != "data" || string(l.Extensions) != "ext" {
		t.Fatalf("decoded slices alias the input: %q %q", l.Data, l.Extensions)
	}
	l.Data = append(l.Data, "more"...) // must not run into Extensions
	if string(l.Extensions) != "ext" {
		t.Fatalf("appending to Data changed Extensions: %q", l.Extensions)
	}
}

func TestLogCodecRejects(t *testing.T) {
	good := appendLog(nil, &raft.Log{Index: 5, Term: 2, Data: []byte("abc"), Extensions: []byte("x"), AppendedAt: time.Now()})
	f := func(name string, b []byte) {
		t.Helper()
		if err := decodeLog(b, new(raft.Log)); !errors.Is(err, ErrCorruptLog) {
			t.Fatalf("%s: decode = %v, want ErrCorruptLog", name, err)
		}
	}
	f("empty", nil)
	f("format 2", append([]byte{2}, good[1:]...))
	for n := 1; n < len(good); n++ {
		f("truncated", good[:n])
	}
	f("trailing byte", append(append([]byte{}, good...), 0))
	bad := append([]byte{}, good...)
	bad[4] |= 0x80 // unknown flag (format, type, index, term, flags)
	f("unknown flag", bad)
	f("nanoseconds", appendRaw(1, 0, 1, 1, flagAppendedAt, 0, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f("huge length", appendRaw(1, 0, 1, 1, flagData, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
}

func appendRaw(b ...byte) []byte { return b }

func FuzzLogCodec(f *testing.F) {
	f.Add(appendLog(nil, &raft.Log{}))
	f.Add(appendLog(nil, &raft.Log{Index: 7, Term: 3, Data: []byte("d"), Extensions: []byte("e"), AppendedAt: time.Unix(1e9, 5)}))
	f.Add([]byte{1, 0, 1, 1, 7, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes: one encoding per entry.
		if re := appendLog(nil, &l); !bytes.Equal(re, b) {
			t.Fatalf("decode then encode: %x, want %x", re, b)
		}
	})
}

func TestLogCodecOneEncoding(t *testing.T) {
	// The zero time is written as "no AppendedAt"; written explicitly it is
	// refused, like an overlong varint, so each entry has one encoding.
	zero := time.Time{}
	b := []byte{logFormat, 0, 1, 1, flagAppendedAt}
	b = binary.AppendVarint(b, zero.Unix())
	b = binary.AppendUvarint(b, 0)
	if err := decodeLog(b, new(raft.Log)); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("explicit zero AppendedAt: %v, want ErrCorruptLog", err)
	}
	if err := decodeLog([]byte{logFormat, 0, 0x81, 0x00, 1, 0}, new(raft.Log)); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("overlong index varint: %v, want ErrCorruptLog", err)
	}
}
