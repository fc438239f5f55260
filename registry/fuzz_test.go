package registry

import (
	"bytes"
	"testing"
)

// FuzzDecodeCommand feeds arbitrary bytes to the command decoder. It must
// never panic; what it accepts must re-encode stably; and applying what it
// accepts to a populated state must keep every invariant (or be refused and
// change nothing). Seeds: testdata/fuzz/FuzzDecodeCommand/ (one per op, and
// malformed ones) plus the samples below.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"op":"promote","time":"2025-01-01T00:00:00+14:00","actor":"a","idempotency_key":"k","args":{"model":"fraud","version":2}}`))
	f.Add([]byte(`{"v":1,"op":"set_stage","time":"9999-12-31T23:59:59-12:00","actor":"a","idempotency_key":"k","args":{"model":"fraud","version":2,"stage":"canary","weight":100}}`))
	base := New()
	for i, a := range scenario() {
		if _, err := base.Apply(Command{Time: t0, Actor: "seed", IdempotencyKey: string(rune('a' + i)), Args: a}); err != nil {
			f.Fatal(err)
		}
	}
	baseSnap, err := base.MarshalSnapshot()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		b1, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		c2, err := DecodeCommand(b1)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v\n%s", err, b1)
		}
		b2, err := EncodeCommand(c2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", b1, b2)
		}
		s, err := RestoreSnapshot(baseSnap)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Apply(c)
		snap, serr := s.MarshalSnapshot()
		if serr != nil {
			t.Fatalf("state does not encode after %s: %v", c.Op(), serr)
		}
		if err != nil {
			if !bytes.Equal(snap, baseSnap) {
				t.Fatalf("refused %s (%v) changed the state", c.Op(), err)
			}
			return
		}
		if err := s.check(); err != nil {
			t.Fatalf("after %s: invariant broken: %v", c.Op(), err)
		}
		if res.AuditSeq != s.LastSeq() || s.LastSeq() <= base.LastSeq() {
			t.Fatalf("after %s: result %+v, last seq %d", c.Op(), res, s.LastSeq())
		}
		r, err := RestoreSnapshot(snap)
		if err != nil {
			t.Fatalf("after %s: restore: %v", c.Op(), err)
		}
		if again, _ := r.MarshalSnapshot(); !bytes.Equal(again, snap) {
			t.Fatalf("after %s: snapshot → restore → snapshot differs", c.Op())
		}
	})
}
