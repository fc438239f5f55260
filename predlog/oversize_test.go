package predlog

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// bigRecord is a request of rows×30 FP32 features and one FP32 score per
// row, as the gateway logs a batch request to the demo model.
func bigRecord(id string, rows int) *Record {
	in := make([]byte, rows*30*4)
	for i := range in {
		in[i] = byte(i * 7)
	}
	out := make([]byte, rows*4)
	for i := range out {
		out[i] = byte(i * 13)
	}
	return &Record{RequestID: id, Model: "fraud", Version: "1", Role: RoleChampion, Node: "n", Time: 1,
		Inputs:  []Tensor{{Name: "features", DataType: "FP32", Shape: []int64{int64(rows), 30}, Data: in}},
		Outputs: []Tensor{{Name: "probability", DataType: "FP32", Shape: []int64{int64(rows), 1}, Data: out}}}
}

// TestLargeRecordsAreLogged: a 9,000-row request (1.1 MB, over the old 1
// MiB limit that dropped it without a trace) and a 12 MiB one (over a ring
// shard's 8 MiB share, appended while small records fill the shards) are
// stored whole and read back byte for byte, async and durable.
func TestLargeRecordsAreLogged(t *testing.T) {
	c := testConfig(t)
	l := openLog(t, c)
	g := newDemoGen(4)
	for i := 0; i < 100; i++ {
		if err := l.Append(g.next()); err != nil {
			t.Fatal(err)
		}
	}
	big := []*Record{bigRecord("rows-9000", 9000), bigRecord("rows-100000", 100_000)}
	if err := l.Append(big[0]); err != nil {
		t.Fatalf("Append of a %d-byte record: %v", recordSize(big[0]), err)
	}
	if err := l.Append(big[1]); err != nil {
		t.Fatalf("Append of a %d-byte record: %v", recordSize(big[1]), err)
	}
	durable := bigRecord("rows-50000-durable", 50_000)
	if err := l.AppendDurable(durable); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Dropped != 0 || s.Committed != 103 {
		t.Fatalf("stats %+v, want 103 committed and none dropped", s)
	}
	l = openLog(t, c)
	for _, want := range append(big, durable) {
		got, err := l.Get(want.RequestID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want.RequestID, err)
		}
		if !bytes.Equal(got.Inputs[0].Data, want.Inputs[0].Data) || !bytes.Equal(got.Outputs[0].Data, want.Outputs[0].Data) ||
			fmt.Sprint(got.Inputs[0].Shape) != fmt.Sprint(want.Inputs[0].Shape) {
			t.Fatalf("Get(%s) returned different tensors", want.RequestID)
		}
	}
}

// TestOversizeRecordIsCounted: a record over MaxRecordBytes is refused with
// a *TooLargeError naming its size and the limit (not an InvalidError: the
// prediction is fine), and counted as dropped and oversize, async and
// durable alike; a durable append does not wait for room it can never get.
func TestOversizeRecordIsCounted(t *testing.T) {
	c := testConfig(t)
	c.MaxRecordBytes = 64 << 10
	l := openLog(t, c)
	f := func(append func(*Record) error, id string) {
		t.Helper()
		err := append(bigRecord(id, 1000)) // 124 KB
		var te *TooLargeError
		if !errors.As(err, &te) || !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalid) || te.Limit != 64<<10 || te.Size < 124_000 {
			t.Fatalf("append of a 124 KB record = %v, want a *TooLargeError with its size and the 64 KiB limit", err)
		}
	}
	f(l.Append, "async")
	f(l.AppendDurable, "durable")
	if s := l.Stats(); s.Appended != 2 || s.Dropped != 2 || s.Oversize != 2 {
		t.Fatalf("stats %+v, want 2 appended, dropped and oversize", s)
	}
}
