package drift

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
)

// ProfileVersion is the "v" of the profiles this package writes; it reads
// only this version.
const ProfileVersion = 1

// Limits a profile must respect, so that a profile from an untrusted
// registration cannot make a sketch allocate without bound.
const (
	MaxFeatures   = 4096    // features in a profile (the output not counted)
	MaxCells      = 1 << 16 // fine cells of one numeric feature's grid
	MaxCategories = 1024    // declared values of one categorical feature
	MaxRowWidth   = 1 << 20 // columns of a row, all inputs together
)

// Kind says how a feature is sketched.
type Kind string

// The kinds of feature.
const (
	// Numeric: a fine grid of cells over the reference range with two open
	// tails (KS, Wasserstein), read as coarse quantile bins (PSI, JS).
	Numeric Kind = "numeric"
	// Categorical: one count per declared value plus "other" (PSI, JS, χ²).
	Categorical Kind = "categorical"
)

// Profile is the reference a model version's traffic is compared with: for
// each monitored feature (an input tensor's column) and for the output score,
// what the reference data (usually the training set) looked like. Build one
// with a ProfileBuilder, ProfileFromReader or a Bootstrap; it travels as JSON
// ({"v":1,…}) inside the version's registration.
//
// A Profile is immutable once built or parsed: sketches made from it share
// its bins. Two profiles with the same Fingerprint give sketches that can be
// merged.
type Profile struct {
	V int `json:"v"`
	// Rows is the number of reference rows the profile was computed from.
	Rows int64 `json:"rows"`
	// Inputs are the model's input tensors in the order their columns are
	// concatenated into the rows that Observe takes.
	Inputs []Input `json:"inputs"`
	// Features are the monitored columns.
	Features []Feature `json:"features"`
	// Output is the score, when the reference had one.
	Output *Output `json:"output,omitempty"`
}

// Input is one input tensor: its name and how many columns of a row it
// contributes.
type Input struct {
	Name  string `json:"name"`
	Width int    `json:"width"`
}

// Feature is the reference of one column. Exactly one of Numeric and
// Categorical is set.
type Feature struct {
	// Input is the input tensor's name (the output's name for Output).
	Input string `json:"input"`
	// Index is the column within that input.
	Index int `json:"index"`
	// Name is the feature's name, when the model names its columns.
	Name string `json:"name,omitempty"`
	// Missing is the number of reference rows whose value was NaN or ±Inf.
	Missing     int64           `json:"missing"`
	Numeric     *NumericRef     `json:"numeric,omitempty"`
	Categorical *CategoricalRef `json:"categorical,omitempty"`
}

// Kind reports how the feature is sketched.
func (f *Feature) Kind() Kind {
	if f.Categorical != nil {
		return Categorical
	}
	return Numeric
}

// Label is the feature's name, or "input[index]" when it has none.
func (f *Feature) Label() string {
	if f.Name != "" {
		return f.Name
	}
	return fmt.Sprintf("%s[%d]", f.Input, f.Index)
}

// Grid is the fine grid of a numeric feature: Cells cells over [Lo, Hi),
// of equal width (Scale "") or equal width in √(x−Lo) (Scale "sqrt": narrow
// cells near Lo, wide ones towards Hi, for right-skewed values such as
// scores of a rare class, amounts or durations). Cell 0 holds the values
// below Lo, cells 1…Cells the grid and cell Cells+1 the values at or above
// Hi, so every finite value has a cell.
type Grid struct {
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	Cells int     `json:"cells"`
	Scale string  `json:"scale,omitempty"`
}

// ScaleSqrt is the Grid.Scale of cells of equal width in √(x−Lo).
const ScaleSqrt = "sqrt"

// Edge returns the value at the lower edge of cell b (1 ≤ b ≤ Cells+1):
// Lo for b = 1, Hi for b = Cells+1.
func (g Grid) Edge(b int) float64 {
	if b >= g.Cells+1 {
		return g.Hi
	}
	f := float64(b-1) / float64(g.Cells)
	if g.Scale == ScaleSqrt {
		return g.Lo + f*f*(g.Hi-g.Lo)
	}
	return g.Lo + f*(g.Hi-g.Lo)
}

// unit is the span the grid's cells divide: Hi−Lo, or √(Hi−Lo).
func (g Grid) unit() float64 {
	if g.Scale == ScaleSqrt {
		return math.Sqrt(g.Hi - g.Lo)
	}
	return g.Hi - g.Lo
}

// NumericRef is the reference of a numeric feature.
type NumericRef struct {
	// Mean and Std of the finite reference values; Std scales Wasserstein.
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
	Grid Grid    `json:"grid"`
	// Bins are the boundaries of the coarse bins PSI and JS use, as cell
	// numbers of Grid: bin j holds cells [Bins[j-1], Bins[j]), the first bin
	// the cells below Bins[0] and the last those from Bins[len-1] on. Bins[0]
	// is 1 and the last is Cells+1, so the two tails are bins of their own;
	// between them are the reference deciles (fewer where values repeat).
	Bins []int `json:"bins"`
	// Cells are the reference rows in each cell of Grid (Cells+2 of them:
	// below Lo, the grid, at or above Hi): the reference distribution at the
	// same resolution as the sketches compared with it, which KS and
	// Wasserstein read and the coarse bins add up.
	Cells []int64 `json:"cells"`
	// TailSums are the sums of the reference values below Lo and at or above
	// Hi, which place each tail's mass at its mean.
	TailSums [2]float64 `json:"tail_sums"`
}

// CategoricalRef is the reference of a categorical feature.
type CategoricalRef struct {
	// Values are the declared values, increasing; any other value counts as
	// "other".
	Values []float64 `json:"values"`
	// Counts are the reference rows per value, then "other"
	// (len(Values)+1 of them).
	Counts []int64 `json:"counts"`
}

// Output is the reference of the model's score: a numeric Feature (Input is
// the output tensor's name) plus the decision threshold.
type Output struct {
	Feature
	// Threshold is the score at or above which a decision is positive.
	Threshold float64 `json:"threshold"`
	// Positives is the number of reference rows scored at or above it.
	Positives int64 `json:"positives"`
}

// RowWidth is the number of columns of a row: the sum of the inputs' widths.
func (p *Profile) RowWidth() int {
	w := 0
	for _, in := range p.Inputs {
		w += in.Width
	}
	return w
}

// column returns the position of (input, index) in a row, or -1.
func (p *Profile) column(input string, index int) int {
	off := 0
	for _, in := range p.Inputs {
		if in.Name == input {
			if index < 0 || index >= in.Width {
				return -1
			}
			return off + index
		}
		off += in.Width
	}
	return -1
}

// ParseProfile decodes and validates a profile from its JSON encoding.
// Unknown fields are refused, so a typo does not silently drop a reference.
func ParseProfile(data []byte) (*Profile, error) {
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidProfile, err)
	}
	if v.V != ProfileVersion {
		return nil, fmt.Errorf("%w: v is %d; this build reads v%d", ErrUnsupportedVersion, v.V, ProfileVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	p := new(Profile)
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidProfile, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the profile object", ErrInvalidProfile)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// MarshalJSON encodes the profile with "v" set to ProfileVersion. Field
// order is fixed, so the same profile always encodes to the same bytes.
func (p Profile) MarshalJSON() ([]byte, error) {
	type plain Profile // without this method
	p.V = ProfileVersion
	return json.Marshal(plain(p))
}

// Validate checks every field and returns a *FieldError naming the first bad
// one ("drift: invalid profile: features[2].numeric.bins (…) must be …").
func (p *Profile) Validate() error {
	if p.V != ProfileVersion {
		return profileErr("v", p.V, fmt.Sprintf("must be %d", ProfileVersion))
	}
	if p.Rows < 1 {
		return profileErr("rows", p.Rows, "must be >= 1")
	}
	if len(p.Inputs) == 0 {
		return profileErr("inputs", nil, "must name at least one input")
	}
	width := 0
	for i, in := range p.Inputs {
		path := fmt.Sprintf("inputs[%d]", i)
		if in.Name == "" {
			return profileErr(path+".name", nil, "must not be empty")
		}
		for _, prev := range p.Inputs[:i] {
			if prev.Name == in.Name {
				return profileErr(path+".name", in.Name, "is listed twice")
			}
		}
		if in.Width < 1 || in.Width > MaxRowWidth {
			return profileErr(path+".width", in.Width, fmt.Sprintf("must be in [1, %d]", MaxRowWidth))
		}
		width += in.Width
	}
	if width > MaxRowWidth {
		return profileErr("inputs", width, fmt.Sprintf("widths must add up to at most %d", MaxRowWidth))
	}
	if len(p.Features) == 0 && p.Output == nil {
		return profileErr("features", nil, "must have at least one feature or an output")
	}
	if len(p.Features) > MaxFeatures {
		return profileErr("features", len(p.Features), fmt.Sprintf("must have at most %d entries", MaxFeatures))
	}
	seen := make(map[int]int, len(p.Features))
	for i := range p.Features {
		f := &p.Features[i]
		path := fmt.Sprintf("features[%d]", i)
		col := p.column(f.Input, f.Index)
		if col < 0 {
			return profileErr(path, fmt.Sprintf("%s[%d]", f.Input, f.Index), "is not a column of the inputs")
		}
		if j, dup := seen[col]; dup {
			return profileErr(path, fmt.Sprintf("%s[%d]", f.Input, f.Index), fmt.Sprintf("is the same column as features[%d]", j))
		}
		seen[col] = i
		if err := f.validate(path, p.Rows); err != nil {
			return err
		}
	}
	if o := p.Output; o != nil {
		if o.Input == "" {
			return profileErr("output.input", nil, "must name the output tensor")
		}
		if o.Index < 0 {
			return profileErr("output.index", o.Index, "must be >= 0")
		}
		if o.Categorical != nil {
			return profileErr("output.categorical", nil, "must be absent: the score is numeric")
		}
		if err := o.validate("output", p.Rows); err != nil {
			return err
		}
		if !finite(o.Threshold) {
			return profileErr("output.threshold", o.Threshold, "must be a finite number")
		}
		if o.Positives < 0 || o.Positives > p.Rows-o.Missing {
			return profileErr("output.positives", o.Positives, "must be between 0 and the non-missing rows")
		}
	}
	return nil
}

func (f *Feature) validate(path string, rows int64) error {
	if (f.Numeric == nil) == (f.Categorical == nil) {
		return profileErr(path, nil, "must have exactly one of numeric and categorical")
	}
	if f.Missing < 0 || f.Missing > rows {
		return profileErr(path+".missing", f.Missing, "must be between 0 and rows")
	}
	if f.Categorical != nil {
		return f.Categorical.validate(path+".categorical", rows-f.Missing)
	}
	return f.Numeric.validate(path+".numeric", rows-f.Missing)
}

func (n *NumericRef) validate(path string, valid int64) error {
	if !finite(n.Mean) {
		return profileErr(path+".mean", n.Mean, "must be a finite number")
	}
	if !finite(n.Std) || n.Std < 0 {
		return profileErr(path+".std", n.Std, "must be a finite number >= 0")
	}
	g := n.Grid
	if !finite(g.Lo) || !finite(g.Hi) || !(g.Lo < g.Hi) || !finite(g.Hi-g.Lo) {
		return profileErr(path+".grid", fmt.Sprintf("[%v, %v)", g.Lo, g.Hi), "must be a finite range with lo < hi")
	}
	if float64(float32(g.Lo)) != g.Lo || float64(float32(g.Hi)) != g.Hi || !(float32(g.Lo) < float32(g.Hi)) {
		return profileErr(path+".grid", fmt.Sprintf("[%v, %v)", g.Lo, g.Hi), "must have lo and hi exact in float32, lo < hi")
	}
	if g.Cells < 1 || g.Cells > MaxCells {
		return profileErr(path+".grid.cells", g.Cells, fmt.Sprintf("must be in [1, %d]", MaxCells))
	}
	if g.Scale != "" && g.Scale != ScaleSqrt {
		return profileErr(path+".grid.scale", g.Scale, `must be "" (linear) or "sqrt"`)
	}
	if s := float64(g.Cells) / g.unit(); !finite(s) || float32(s) == 0 || math.IsInf(float64(float32(s)), 0) {
		return profileErr(path+".grid", fmt.Sprintf("[%v, %v) in %d cells", g.Lo, g.Hi, g.Cells), "has cells too narrow or too wide for float32")
	}
	if len(n.Bins) < 2 || n.Bins[0] != 1 || n.Bins[len(n.Bins)-1] != g.Cells+1 {
		return profileErr(path+".bins", n.Bins, fmt.Sprintf("must start at 1 and end at cells+1 (%d)", g.Cells+1))
	}
	for i := 1; i < len(n.Bins); i++ {
		if n.Bins[i] <= n.Bins[i-1] {
			return profileErr(path+".bins", n.Bins, "must be strictly increasing")
		}
	}
	if len(n.Cells) != g.Cells+2 {
		return profileErr(path+".cells", len(n.Cells), fmt.Sprintf("must have grid.cells+2 = %d entries", g.Cells+2))
	}
	if err := checkCounts(path+".cells", n.Cells, valid); err != nil {
		return err
	}
	for i, v := range n.TailSums {
		if !tailSumOK(v, float64(n.Cells[i*(g.Cells+1)])) {
			return profileErr(fmt.Sprintf("%s.tail_sums[%d]", path, i), v, "must be the sum of the tail's float32 values")
		}
	}
	return nil
}

func (c *CategoricalRef) validate(path string, valid int64) error {
	if len(c.Values) == 0 || len(c.Values) > MaxCategories {
		return profileErr(path+".values", len(c.Values), fmt.Sprintf("must have between 1 and %d entries", MaxCategories))
	}
	for i, v := range c.Values {
		if !finite(v) || float64(float32(v)) != v {
			return profileErr(fmt.Sprintf("%s.values[%d]", path, i), v, "must be a finite number exact in float32")
		}
		if i > 0 && !(v > c.Values[i-1]) {
			return profileErr(fmt.Sprintf("%s.values[%d]", path, i), v, "must be greater than the value before it")
		}
	}
	if len(c.Counts) != len(c.Values)+1 {
		return profileErr(path+".counts", len(c.Counts), fmt.Sprintf("must have len(values)+1 = %d entries (the last is other)", len(c.Values)+1))
	}
	return checkCounts(path+".counts", c.Counts, valid)
}

func checkCounts(path string, counts []int64, want int64) error {
	var sum int64
	for i, c := range counts {
		if c < 0 || c > want {
			return profileErr(fmt.Sprintf("%s[%d]", path, i), c, "must be between 0 and the non-missing rows")
		}
		sum += c
	}
	if sum != want {
		return profileErr(path, sum, fmt.Sprintf("must add up to the non-missing rows (%d)", want))
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Fingerprint identifies what a sketch's counts mean under this profile:
// the row width, each feature's column, grid and declared values, and the
// output's grid and threshold (not the reference counts). Sketches merge
// and import only between profiles with the same fingerprint.
func (p *Profile) Fingerprint() uint64 {
	h := fnv.New64a()
	var b [8]byte
	u := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	f := func(v float64) { u(math.Float64bits(v)) }
	h.Write([]byte("modelgate drift layout v1"))
	u(uint64(p.RowWidth()))
	feature := func(col int, ft *Feature) {
		u(uint64(int64(col)))
		if c := ft.Categorical; c != nil {
			u(1)
			u(uint64(len(c.Values)))
			for _, v := range c.Values {
				f(v)
			}
			return
		}
		u(2)
		f(ft.Numeric.Grid.Lo)
		f(ft.Numeric.Grid.Hi)
		u(uint64(ft.Numeric.Grid.Cells))
		if ft.Numeric.Grid.Scale == ScaleSqrt {
			u(3)
		}
	}
	u(uint64(len(p.Features)))
	for i := range p.Features {
		feature(p.column(p.Features[i].Input, p.Features[i].Index), &p.Features[i])
	}
	if o := p.Output; o != nil {
		feature(-1, &o.Feature)
		f(o.Threshold)
	}
	return h.Sum64()
}
