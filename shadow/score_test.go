package shadow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/modelgate/modelgate/runtime"
)

func fp64Tensor(name string, shape []int64, v ...float64) runtime.Tensor {
	t := runtime.Tensor{Name: name, DataType: runtime.FP64, Shape: shape}
	for _, x := range v {
		t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(x))
	}
	return t
}

func TestScoreSpecReadsTheNamedColumn(t *testing.T) {
	label := runtime.Tensor{Name: "label", DataType: runtime.Int64, Shape: []int64{2}, Data: make([]byte, 16)}
	probs := fp64Tensor("probabilities", []int64{2, 2}, 0.9, 0.1, 0.3, 0.7)
	var f32 runtime.Tensor
	f32.SetFloat32s("score", []int64{3}, []float32{0.25, 0.5, 0.75})
	text := runtime.Tensor{Name: "text", DataType: runtime.Bytes, Shape: []int64{1}, Strings: []string{"x"}}
	outs := []runtime.Tensor{label, probs, f32, text}
	f := func(spec ScoreSpec, want string) {
		t.Helper()
		got, err := spec.AppendScores(nil, outs)
		if err != nil {
			t.Fatalf("%+v: %v", spec, err)
		}
		if fmt.Sprint(got) != want {
			t.Fatalf("%+v: %v, want %s", spec, got, want)
		}
	}
	f(ScoreSpec{}, "[0 0]")
	f(ScoreSpec{Output: "probabilities", Column: 1}, "[0.1 0.7]")
	f(ScoreSpec{Output: "probabilities"}, "[0.9 0.3]")
	f(ScoreSpec{Output: "score"}, "[0.25 0.5 0.75]")
	bad := func(spec ScoreSpec) {
		t.Helper()
		if _, err := spec.AppendScores(nil, outs); !errors.Is(err, ErrScore) {
			t.Fatalf("%+v: %v, want ErrScore", spec, err)
		}
	}
	bad(ScoreSpec{Output: "missing"})
	bad(ScoreSpec{Output: "probabilities", Column: 2})
	bad(ScoreSpec{Output: "text"})
}

// TestUnscoredOutcomes counts runs whose outputs cannot be compared (a
// different row count, an output the spec does not find, a NaN score) as
// Unscored, with their latencies, and no rows.
func TestUnscoredOutcomes(t *testing.T) {
	cs, _ := NewComparisons(CompareConfig{Score: ScoreSpec{Output: "p"}})
	now := time.Now()
	champ := []runtime.Tensor{fp64Tensor("p", []int64{2}, 0.2, 0.8)}
	for _, shadow := range [][]runtime.Tensor{
		{fp64Tensor("p", []int64{1}, 0.2)},
		{fp64Tensor("q", []int64{2}, 0.2, 0.8)},
		{fp64Tensor("p", []int64{2}, 0.2, math.NaN())},
	} {
		cs.ObserveShadow(&Outcome{Time: now, Champion: 1, Version: 2, ChampionOutputs: champ, Outputs: shadow, Latency: time.Millisecond})
	}
	cs.ObserveShadow(&Outcome{Time: now, Champion: 1, Version: 2, Err: errors.New("boom")})
	cs.ObserveShadow(&Outcome{Time: now, Champion: 1, Version: 2, ChampionOutputs: champ, Outputs: champ})
	c := cs.Snapshot(Pair{1, 2}, time.Minute)
	if c.Runs != 5 || c.Unscored != 3 || c.Errors != 1 || c.Diff.Count() != 2 || c.Agreement.BothPositive != 1 {
		t.Fatalf("%+v", c.Summary())
	}
}
