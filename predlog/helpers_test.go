package predlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// demoGen makes records shaped like the demo fraud model's: 30 float32
// features (11 standardised numerics, hour sin/cos, 6 flags, an 11-way
// one-hot category), one float32 score, gateway-style ids (a random
// per-process prefix and a hex sequence number, about 20 bytes).
type demoGen struct {
	rng    *rand.Rand
	prefix string
	seq    uint64
	in     [120]byte
	out    [4]byte
	shape  []int64
	oshape []int64
	rec    Record
}

func newDemoGen(seed uint64) *demoGen {
	g := &demoGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	g.prefix = fmt.Sprintf("%012x-", g.rng.Uint64()>>16)
	g.shape = []int64{1, 30}
	g.oshape = []int64{1, 1}
	g.rec = Record{
		Model: "fraud", Version: "1", Role: RoleChampion, Node: "node-1",
		Inputs:  []Tensor{{Name: "features", DataType: "FP32", Shape: g.shape}},
		Outputs: []Tensor{{Name: "probability", DataType: "FP32", Shape: g.oshape}},
	}
	return g
}

// next fills and returns the generator's record (reused on each call).
func (g *demoGen) next() *Record {
	g.seq++
	r := g.rng
	f := func(i int, v float32) { binary.LittleEndian.PutUint32(g.in[4*i:], math.Float32bits(v)) }
	for i := 0; i < 11; i++ {
		f(i, float32(r.NormFloat64()))
	}
	h := 2 * math.Pi * r.Float64()
	f(11, float32(math.Sin(h)))
	f(12, float32(math.Cos(h)))
	for i := 13; i < 19; i++ {
		v := float32(0)
		if r.Float64() < 0.2 {
			v = 1
		}
		f(i, v)
	}
	c := r.IntN(11)
	for i := 19; i < 30; i++ {
		v := float32(0)
		if i-19 == c {
			v = 1
		}
		f(i, v)
	}
	p := 1 / (1 + math.Exp(-(2*r.NormFloat64() - 4)))
	binary.LittleEndian.PutUint32(g.out[:], math.Float32bits(float32(p)))
	g.rec.Model, g.rec.Version, g.rec.Role = "fraud", "1", RoleChampion
	g.rec.RequestID = g.prefix + fmt.Sprintf("%x", g.seq)
	g.rec.Time = time.Now().UnixNano()
	g.rec.Latency = int64(200_000 + r.IntN(700_000))
	g.rec.Inputs[0].Data = g.in[:]
	g.rec.Outputs[0].Data = g.out[:]
	return &g.rec
}

func testConfig(t testing.TB) Config {
	c := DefaultConfig(t.TempDir())
	c.PruneInterval = -1
	c.MemTableSize = 4 << 20
	c.MaxBatchBytes = 256 << 10
	return c
}

func openLog(t testing.TB, c Config) *Log {
	t.Helper()
	l, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeLog(t, l) })
	return l
}

func sameRecord(t *testing.T, got, want *Record) {
	t.Helper()
	if got.RequestID != want.RequestID || got.Model != want.Model || got.Version != want.Version ||
		got.Role != want.Role || got.Time != want.Time || got.Node != want.Node || got.Latency != want.Latency {
		t.Fatalf("record mismatch:\n got %+v\nwant %+v", got, want)
	}
	sameTensors(t, got.Inputs, want.Inputs)
	sameTensors(t, got.Outputs, want.Outputs)
}

func sameTensors(t *testing.T, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tensors, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Name != w.Name || g.DataType != w.DataType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) ||
			string(g.Data) != string(w.Data) || fmt.Sprint(g.Strings) != fmt.Sprint(w.Strings) {
			t.Fatalf("tensor %d mismatch:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func cloneRecord(r *Record) Record {
	c := *r
	c.Inputs = cloneTensors(r.Inputs)
	c.Outputs = cloneTensors(r.Outputs)
	return c
}

func cloneTensors(ts []Tensor) []Tensor {
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		out[i] = Tensor{Name: t.Name, DataType: t.DataType,
			Shape:   append([]int64(nil), t.Shape...),
			Data:    append([]byte(nil), t.Data...),
			Strings: append([]string(nil), t.Strings...)}
	}
	return out
}

func nan() float64 { return math.NaN() }
