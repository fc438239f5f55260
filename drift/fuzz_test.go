package drift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

var (
	fuzzOnce sync.Once
	fuzzProf *Profile
)

// fuzzProfile is a small profile (four features of kinds numeric,
// discrete numeric, categorical and constant, 16–64 cells, and the score),
// so exports are a few hundred bytes and the fuzzer can reach every part of
// the decoder quickly.
func fuzzProfile(t testing.TB) *Profile {
	fuzzOnce.Do(func() {
		o := fraudOptions()
		o.Columns = []int{fraud.FeatureAmount, fraud.FeatureVelocity, fraud.FeatureOnline, fraud.FeatureCategoryOther}
		o.MinCells, o.MaxCells = 16, 64
		b := NewProfileBuilder(o)
		rows, scores := gen(20, 2000, fraud.Drift{})
		for i, r := range rows {
			_ = b.AddScored(r, scores[i])
		}
		var err error
		if fuzzProf, err = b.Build(); err != nil {
			panic(err)
		}
	})
	return fuzzProf
}

// seedSketches are exports of real sketches: empty, one row, undrifted
// traffic, and traffic with missing values, far tails and a new category.
func seedSketches(t testing.TB, p *Profile) [][]byte {
	empty, _ := NewSketch(p)
	one, os1 := gen(21, 1, fraud.Drift{})
	plain, ps := gen(22, 200, fraud.Drift{})
	odd, oddS := gen(23, 300, fraud.Drift{Kind: fraud.NewCategory})
	odd[0][0] = float32(math.NaN())
	odd[1][1] = 3e38
	odd[2][2] = -3e38
	odd[3][4] = float32(math.Inf(-1))
	oddS[4] = float32(math.NaN())
	return [][]byte{
		empty.Export(),
		feed(t, p, one, os1).Export(),
		feed(t, p, plain, ps).Export(),
		feed(t, p, odd, oddS).Export(),
	}
}

// FuzzSketchImport feeds Import arbitrary bytes: it must never panic; what
// it accepts must export and re-import to the same state, and compare into
// a report that encodes as JSON (no NaN). Seeds are in
// testdata/fuzz/FuzzSketchImport (written by TestWriteFuzzSeeds).
func FuzzSketchImport(f *testing.F) {
	p := fuzzProfile(f)
	for _, s := range seedSketches(f, p) {
		f.Add(s)
	}
	f.Add([]byte("MGDS\x01"))
	l := compile(p)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decode(l, data)
		if err != nil {
			return
		}
		s := newSketch(l, 1)
		s.st = st
		out := s.Export()
		s2, err := Import(p, out)
		if err != nil {
			t.Fatalf("an export of an accepted import does not import: %v", err)
		}
		if st2 := stateOf(s2); !equalState(&st, &st2) {
			t.Fatal("state changed in an export/import round trip")
		}
		if !bytes.Equal(s2.Export(), out) {
			t.Fatal("export is not stable")
		}
		rep := compareState(p, l, &st, DefaultPolicy())
		if _, err := json.Marshal(rep); err != nil {
			t.Fatalf("report of an accepted import does not encode: %v", err)
		}
	})
}

// TestWriteFuzzSeeds rewrites the seed corpus when DRIFT_WRITE_SEEDS is
// set (after a change of the export format or of the fuzz profile).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("DRIFT_WRITE_SEEDS") == "" {
		t.Skip("set DRIFT_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzSketchImport")
	}
	p := fuzzProfile(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzSketchImport")
	for i, s := range seedSketches(t, p) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
