package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/fraud"
)

func TestProfileJSONRoundTrip(t *testing.T) {
	p, _, _ := reference(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"v":1,"rows":10000,`)) {
		t.Errorf("encoding starts %.40s", b)
	}
	q, err := ParseProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Error("profile changed in a JSON round trip")
	}
	b2, _ := json.Marshal(q)
	if !bytes.Equal(b, b2) {
		t.Error("encoding is not stable")
	}
	if p.Fingerprint() != q.Fingerprint() {
		t.Error("fingerprint changed in a JSON round trip")
	}
	t.Logf("profile JSON: %d bytes for %d features", len(b), len(p.Features))

	if _, err := ParseProfile(bytes.Replace(b, []byte(`"v":1`), []byte(`"v":2`), 1)); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("v2: %v", err)
	}
	if _, err := ParseProfile(bytes.Replace(b, []byte(`"rows":`), []byte(`"rowz":1,"rows":`), 1)); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := ParseProfile([]byte(`[1]`)); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("not an object: %v", err)
	}
}

// TestProfileValidate breaks one field at a time and expects the error to
// name it.
func TestProfileValidate(t *testing.T) {
	p, _, _ := reference(t)
	clone := func() *Profile {
		b, _ := json.Marshal(p)
		var q Profile
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		return &q
	}
	f := func(mutate func(q *Profile), field string) {
		t.Helper()
		q := clone()
		mutate(q)
		err := q.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidProfile) || !strings.HasPrefix(fe.Field, field) {
			t.Errorf("want an error naming %s, got %v", field, err)
		}
	}
	num := func(q *Profile) *NumericRef { return q.Features[0].Numeric }
	cat := func(q *Profile) *CategoricalRef { return q.Features[fraud.FeatureOnline].Categorical }
	f(func(q *Profile) { q.V = 0 }, "v")
	f(func(q *Profile) { q.Rows = 0 }, "rows")
	f(func(q *Profile) { q.Inputs = nil }, "inputs")
	f(func(q *Profile) { q.Inputs[0].Width = 0 }, "inputs[0].width")
	f(func(q *Profile) { q.Inputs = append(q.Inputs, q.Inputs[0]) }, "inputs[1].name")
	f(func(q *Profile) { q.Features[3].Index = 99 }, "features[3]")
	f(func(q *Profile) { q.Features[3].Index = 2 }, "features[3]")
	f(func(q *Profile) { q.Features[1].Categorical = &CategoricalRef{} }, "features[1]")
	f(func(q *Profile) { q.Features[1].Missing = -1 }, "features[1].missing")
	f(func(q *Profile) { num(q).Grid.Cells = 0 }, "features[0].numeric.grid")
	f(func(q *Profile) { num(q).Grid.Lo = num(q).Grid.Hi }, "features[0].numeric.grid")
	f(func(q *Profile) { num(q).Grid.Lo = 0.1 }, "features[0].numeric.grid")
	f(func(q *Profile) { num(q).Bins[1], num(q).Bins[2] = num(q).Bins[2], num(q).Bins[1] }, "features[0].numeric.bins")
	f(func(q *Profile) { num(q).Bins = num(q).Bins[1:] }, "features[0].numeric.bins")
	f(func(q *Profile) { num(q).Cells = num(q).Cells[1:] }, "features[0].numeric.cells")
	f(func(q *Profile) { num(q).Cells[10]++ }, "features[0].numeric.cells")
	f(func(q *Profile) { num(q).Std = -1 }, "features[0].numeric.std")
	f(func(q *Profile) { cat(q).Values = []float64{1, 0} }, "features[15].categorical.values[1]")
	f(func(q *Profile) { cat(q).Values[0] = 0.1 }, "features[15].categorical.values[0]")
	f(func(q *Profile) { cat(q).Counts = cat(q).Counts[1:] }, "features[15].categorical.counts")
	f(func(q *Profile) { q.Output.Threshold = math.NaN() }, "output")
	f(func(q *Profile) { q.Output.Positives = q.Rows + 1 }, "output.positives")
	f(func(q *Profile) { q.Output.Input = "" }, "output.input")
	if err := clone().Validate(); err != nil {
		t.Errorf("an unchanged clone: %v", err)
	}
	e := (&FieldError{Kind: ErrInvalidProfile, Field: "features[0].numeric.grid.cells", Value: "0", Reason: "must be in [1, 65536]"}).Error()
	if e != "drift: invalid profile: features[0].numeric.grid.cells (0) must be in [1, 65536]" {
		t.Errorf("message: %s", e)
	}
}

func TestBuilderKinds(t *testing.T) {
	p, _, _ := reference(t)
	for i, f := range p.Features {
		wantCat := i >= fraud.FeatureCardPresent
		if (f.Kind() == Categorical) != wantCat {
			t.Errorf("%s is %s", f.Name, f.Kind())
		}
		if f.Name != fraud.FeatureNames[i] || f.Input != "input" || f.Index != i {
			t.Errorf("feature %d is %s %s[%d]", i, f.Name, f.Input, f.Index)
		}
	}
	if got := p.Features[fraud.FeatureCategoryOther].Categorical.Values; !reflect.DeepEqual(got, []float64{0}) {
		t.Errorf("mcc_other values %v, want [0]", got)
	}
	// Forcing kinds, choosing columns, and the cell budget.
	rows, _ := gen(15, 2000, fraud.Drift{})
	o := fraudOptions()
	o.Columns = []int{fraud.FeatureAmount, fraud.FeatureOnline, fraud.FeatureVelocity}
	o.Numeric = []string{"online"}
	o.Categorical = []string{"input[3]"}
	o.MaxCells = 256
	b := NewProfileBuilder(o)
	for _, r := range rows {
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	q, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Features) != 3 || q.Output != nil {
		t.Fatalf("%d features, output %v", len(q.Features), q.Output)
	}
	if q.Features[1].Kind() != Numeric || q.Features[2].Kind() != Categorical || q.Features[0].Numeric.Grid.Cells > 256 {
		t.Errorf("kinds %s %s, cells %d", q.Features[1].Kind(), q.Features[2].Kind(), q.Features[0].Numeric.Grid.Cells)
	}
	o.Categorical = []string{"nope"}
	if _, err := NewProfileBuilder(o).Build(); err == nil {
		t.Error("built with too few rows")
	}
	b = NewProfileBuilder(o)
	for _, r := range rows {
		_ = b.Add(r)
	}
	if _, err := b.Build(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "categorical[0]") {
		t.Errorf("unknown column name: %v", err)
	}
	if err := b.AddScored(rows[0], 0.5); err == nil {
		t.Error("mixing scored and unscored rows was accepted")
	}
	if err := b.Add(rows[0][:4]); !errors.Is(err, ErrRowWidth) {
		t.Errorf("short row: %v", err)
	}
}

func TestBuilderReservoir(t *testing.T) {
	rows, scores := gen(16, 3000, fraud.Drift{})
	o := fraudOptions()
	o.MaxRows = 1000
	b := NewProfileBuilder(o)
	for i, r := range rows {
		_ = b.AddScored(r, scores[i])
	}
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 1000 || b.Rows() != 3000 {
		t.Errorf("profile of %d rows from %d", p.Rows, b.Rows())
	}
}

func TestProfileFromReader(t *testing.T) {
	rows, scores := gen(17, 600, fraud.Drift{})
	var csv, arrays, objects bytes.Buffer
	csv.WriteString(strings.Join(fraud.FeatureNames[:], ",") + ",probability\n")
	for i, r := range rows {
		var cells []string
		obj := map[string]float32{}
		for k, v := range r {
			cells = append(cells, fmt.Sprint(v))
			obj[fraud.FeatureNames[k]] = v
		}
		csv.WriteString(strings.Join(cells, ",") + "," + fmt.Sprint(scores[i]) + "\n")
		a, _ := json.Marshal(append(append([]float32(nil), r...), scores[i]))
		arrays.Write(append(a, '\n'))
		// Objects in feature order (json.Marshal sorts map keys, so write
		// them by hand).
		objects.WriteString("{")
		for k, v := range r {
			fmt.Fprintf(&objects, "%q:%v,", fraud.FeatureNames[k], v)
		}
		fmt.Fprintf(&objects, "\"probability\":%v}\n", scores[i])
	}
	want := NewProfileBuilder(fraudOptions())
	for i, r := range rows {
		_ = want.AddScored(r, scores[i])
	}
	wp, err := want.Build()
	if err != nil {
		t.Fatal(err)
	}
	opts := ReaderOptions{ProfileOptions: ProfileOptions{Output: "probability"}, ScoreColumn: "probability"}
	for _, c := range []struct {
		name, format string
		data         []byte
		names        bool
	}{
		{"csv", "csv", csv.Bytes(), true},
		{"csv sniffed", "", csv.Bytes(), true},
		{"ndjson objects", "ndjson", objects.Bytes(), true},
		{"ndjson arrays", "", arrays.Bytes(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := opts
			if !c.names {
				o.ScoreColumn = ""
				o.Names = append(fraud.FeatureNames[:], "probability")
				o.Columns = make([]int, fraud.NumFeatures)
				for i := range o.Columns {
					o.Columns[i] = i
				}
			}
			p, err := ProfileFromReader(bytes.NewReader(c.data), c.format, o)
			if err != nil {
				t.Fatal(err)
			}
			if !c.names {
				// Without a score column the score is the 31st column, not
				// the output; compare the features only.
				p.Output, p.Inputs = wp.Output, wp.Inputs
				for i := range p.Features {
					p.Features[i].Input = "input"
				}
			}
			if !reflect.DeepEqual(p, wp) {
				t.Error("profile from the file differs from the builder's")
			}
		})
	}
	bad := func(format, data, want string) {
		t.Helper()
		_, err := ProfileFromReader(strings.NewReader(data), format, ReaderOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", data, err, want)
		}
	}
	bad("csv", "a,b\n1,2\n3,x\n", "line 3 column 2 (b)")
	bad("ndjson", "[1,2]\n[1,\"x\"]\n", "line 2")
	bad("ndjson", "{\"a\":1}\n{\"b\":2}\n", `key "b"`)
	bad("ndjson", "7\n", "line 1")
	bad("xml", "<a/>", "format")
	bad("csv", "a,b\n1,2\n", "need at least 100")
	bad("csv", "", "no rows")
}

func TestBootstrap(t *testing.T) {
	rows, scores := gen(18, 1200, fraud.Drift{})
	opts := fraudOptions()
	bs, err := NewBootstrap(1000, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Profile(); !errors.Is(err, ErrNotEnoughRows) {
		t.Errorf("profile before full: %v", err)
	}
	fulls := 0
	for i, r := range rows {
		full, err := bs.Observe(r, scores[i])
		if err != nil {
			t.Fatal(err)
		}
		if full {
			fulls++
			if i != 999 {
				t.Errorf("full at row %d", i)
			}
		}
	}
	if fulls != 1 || !bs.Full() || bs.Rows() != 1000 {
		t.Fatalf("fulls %d, rows %d", fulls, bs.Rows())
	}
	got, err := bs.Profile()
	if err != nil {
		t.Fatal(err)
	}
	b := NewProfileBuilder(opts)
	for i, r := range rows[:1000] {
		_ = b.AddScored(r, scores[i])
	}
	want, _ := b.Build()
	if !reflect.DeepEqual(got, want) {
		t.Error("bootstrap profile differs from the builder's on the same rows")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = bs.Observe(rows[0], 0) }); n != 0 {
		t.Errorf("Observe allocates %v", n)
	}
	if _, err := NewBootstrap(0, ProfileOptions{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("without inputs: %v", err)
	}
}
