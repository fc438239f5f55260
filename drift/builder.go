package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Defaults of ProfileOptions' zero values.
const (
	DefaultMaxCategories = 16
	DefaultMaxCellMass   = 0.01
	DefaultMinCells      = 128
	DefaultMaxCells      = 512
	DefaultMargin        = 0.25
	DefaultMaxRows       = 200_000
	DefaultThreshold     = 0.5
	DefaultOutputName    = "score"
	// MinProfileRows is the fewest rows a profile is built from.
	MinProfileRows = 100
)

// ProfileOptions says how a ProfileBuilder (or Bootstrap, or
// ProfileFromReader) turns rows into a profile. Zero values mean the
// defaults above.
type ProfileOptions struct {
	// Inputs are the model's input tensors, whose columns a row
	// concatenates. Empty: one input named "input", as wide as the first row.
	Inputs []Input
	// Names names a row's columns in order (the demo model names its 30);
	// empty or "" entries leave a column unnamed.
	Names []string
	// Columns are the row positions to monitor; nil: every column.
	Columns []int
	// Categorical and Numeric force a column's kind, by name or by label
	// ("input[3]"). Other columns are categorical when the reference has at
	// most MaxCategories distinct values, all integers, and numeric
	// otherwise; MaxCategories < 0 makes every column numeric.
	Categorical   []string
	Numeric       []string
	MaxCategories int
	// Output is the output tensor's name and OutputIndex the score's column
	// in it ("score", 0); Threshold is the decision threshold (0.5).
	Output      string
	OutputIndex int
	Threshold   float64
	// MaxCellMass is the largest share of the reference a grid cell may
	// hold (0.01): a numeric feature gets the fewest cells, between
	// MinCells (128) and MaxCells (512), that achieve it. It bounds the
	// streaming KS error (KS is exact at cell edges and can be off inside a
	// cell by at most the cell's reference share); point masses (a value
	// repeated that often) are exempt, being exact at cell edges. Halving
	// it about doubles the memory of a numeric feature.
	MaxCellMass        float64
	MinCells, MaxCells int
	// Margin widens a linear grid beyond the reference's [p0.1, p99.9] by
	// this share of that range on each side (0.25), and a sqrt grid above,
	// so moderate shifts stay on the grid; values beyond go to the tails,
	// whose count and sum are exact.
	Margin float64
	// MaxRows caps the rows kept in memory (200,000): beyond it the builder
	// keeps a uniform reservoir sample, seeded with Seed, and the profile's
	// Rows is the sample's size.
	MaxRows int
	Seed    uint64
}

func (o ProfileOptions) withDefaults() ProfileOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxCategories, DefaultMaxCategories)
	def(&o.MinCells, DefaultMinCells)
	def(&o.MaxCells, DefaultMaxCells)
	def(&o.MaxRows, DefaultMaxRows)
	if o.MaxCellMass == 0 {
		o.MaxCellMass = DefaultMaxCellMass
	}
	if o.Margin == 0 {
		o.Margin = DefaultMargin
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Output == "" {
		o.Output = DefaultOutputName
	}
	return o
}

// Validate checks the options (after defaults) and returns a *FieldError
// naming the first bad one.
func (o ProfileOptions) Validate() error {
	o = o.withDefaults()
	bad := func(field string, v any, reason string) error { return fieldErr(ErrInvalidConfig, field, v, reason) }
	for i, in := range o.Inputs {
		if in.Name == "" || in.Width < 1 || in.Width > MaxRowWidth {
			return bad(fmt.Sprintf("inputs[%d]", i), fmt.Sprintf("%q width %d", in.Name, in.Width), "must have a name and a width in [1, 1048576]")
		}
	}
	switch {
	case !(o.MaxCellMass > 0 && o.MaxCellMass < 1):
		return bad("max_cell_mass", o.MaxCellMass, "must be in (0, 1)")
	case o.MinCells < 1 || o.MaxCells > MaxCells || o.MinCells > o.MaxCells:
		return bad("cells", fmt.Sprintf("[%d, %d]", o.MinCells, o.MaxCells), fmt.Sprintf("must satisfy 1 <= min <= max <= %d", MaxCells))
	case !(o.Margin > 0 && o.Margin <= 100):
		return bad("margin", o.Margin, "must be in (0, 100]")
	case o.MaxRows < MinProfileRows:
		return bad("max_rows", o.MaxRows, fmt.Sprintf("must be >= %d", MinProfileRows))
	case !finite(o.Threshold):
		return bad("threshold", o.Threshold, "must be a finite number")
	case o.OutputIndex < 0:
		return bad("output_index", o.OutputIndex, "must be >= 0")
	}
	return nil
}

// ProfileBuilder computes a Profile from reference rows. It keeps the rows
// (up to MaxRows, then a reservoir sample), so Build sees exact quantiles.
// It is not safe for concurrent use.
type ProfileBuilder struct {
	opts   ProfileOptions
	width  int
	rows   []float32 // row-major sample
	scores []float32
	scored int8 // 0 unknown, 1 every row has a score, -1 none has
	seen   int64
	rng    *rand.Rand
}

// NewProfileBuilder returns a builder; bad options surface from Add or
// Build.
func NewProfileBuilder(opts ProfileOptions) *ProfileBuilder {
	o := opts.withDefaults()
	b := &ProfileBuilder{opts: o, rng: rand.New(rand.NewPCG(o.Seed, 0x64726966742d7273))}
	for _, in := range o.Inputs {
		b.width += in.Width
	}
	return b
}

// Add adds one reference row without a score.
func (b *ProfileBuilder) Add(row []float32) error { return b.add(row, 0, -1) }

// AddScored adds one reference row with the model's score for it. A
// builder takes either scored rows or unscored ones, not both.
func (b *ProfileBuilder) AddScored(row []float32, score float32) error {
	return b.add(row, score, 1)
}

func (b *ProfileBuilder) add(row []float32, score float32, scored int8) error {
	if b.width == 0 {
		if len(row) == 0 || len(row) > MaxRowWidth {
			return fmt.Errorf("%w: the first row has %d columns", ErrRowWidth, len(row))
		}
		b.width = len(row)
	}
	if len(row) != b.width {
		return fmt.Errorf("%w: row %d has %d columns, want %d", ErrRowWidth, b.seen+1, len(row), b.width)
	}
	if b.scored != 0 && b.scored != scored {
		return fmt.Errorf("%w: row %d: a profile is built from rows that all have a score or none does", ErrBadInput, b.seen+1)
	}
	b.scored = scored
	b.seen++
	n := len(b.rows) / b.width
	if n < b.opts.MaxRows {
		b.rows = append(b.rows, row...)
		b.scores = append(b.scores, score)
		return nil
	}
	if j := b.rng.Int64N(b.seen); j < int64(n) {
		copy(b.rows[int(j)*b.width:], row)
		b.scores[j] = score
	}
	return nil
}

// Rows returns the number of rows added so far.
func (b *ProfileBuilder) Rows() int64 { return b.seen }

// Build computes the profile from the rows added so far. It needs at least
// MinProfileRows rows (ErrNotEnoughRows).
func (b *ProfileBuilder) Build() (*Profile, error) {
	o := b.opts
	if err := o.Validate(); err != nil {
		return nil, err
	}
	n := 0
	if b.width > 0 {
		n = len(b.rows) / b.width
	}
	if n < MinProfileRows {
		return nil, fmt.Errorf("%w: have %d rows, need at least %d", ErrNotEnoughRows, n, MinProfileRows)
	}
	inputs := o.Inputs
	if len(inputs) == 0 {
		inputs = []Input{{Name: "input", Width: b.width}}
	}
	p := &Profile{V: ProfileVersion, Rows: int64(n), Inputs: inputs}
	if w := p.RowWidth(); w != b.width {
		return nil, fmt.Errorf("%w: the inputs add up to %d columns but the rows have %d", ErrRowWidth, w, b.width)
	}
	cols := o.Columns
	if cols == nil {
		cols = make([]int, b.width)
		for i := range cols {
			cols[i] = i
		}
	}
	forced, err := b.forcedKinds(p)
	if err != nil {
		return nil, err
	}
	vals := make([]float64, 0, n)
	for k, col := range cols {
		if col < 0 || col >= b.width {
			return nil, fieldErr(ErrInvalidConfig, fmt.Sprintf("columns[%d]", k), col, fmt.Sprintf("must be a column of the row, in [0, %d)", b.width))
		}
		vals = vals[:0]
		for r := range n {
			vals = append(vals, float64(b.rows[r*b.width+col]))
		}
		f := b.feature(vals, forced[col])
		f.Input, f.Index = p.locate(col)
		if col < len(o.Names) {
			f.Name = o.Names[col]
		}
		p.Features = append(p.Features, f)
	}
	if b.scored == 1 {
		vals = vals[:0]
		var pos int64
		for _, s := range b.scores {
			vals = append(vals, float64(s))
			if s >= float32(o.Threshold) {
				pos++
			}
		}
		f := b.feature(vals, Numeric)
		f.Input, f.Index, f.Name = o.Output, o.OutputIndex, o.Output
		p.Output = &Output{Feature: f, Threshold: float64(float32(o.Threshold)), Positives: pos}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("drift: built an invalid profile (a bug): %w", err)
	}
	return p, nil
}

// locate maps a row position to (input, index).
func (p *Profile) locate(col int) (string, int) {
	for _, in := range p.Inputs {
		if col < in.Width {
			return in.Name, col
		}
		col -= in.Width
	}
	return "", -1
}

// forcedKinds resolves Categorical and Numeric to row positions.
func (b *ProfileBuilder) forcedKinds(p *Profile) (map[int]Kind, error) {
	m := map[int]Kind{}
	for _, list := range []struct {
		field string
		names []string
		kind  Kind
	}{{"categorical", b.opts.Categorical, Categorical}, {"numeric", b.opts.Numeric, Numeric}} {
		for i, name := range list.names {
			col := -1
			for c := range b.width {
				in, idx := p.locate(c)
				if (c < len(b.opts.Names) && b.opts.Names[c] == name) || fmt.Sprintf("%s[%d]", in, idx) == name {
					col = c
					break
				}
			}
			if col < 0 {
				return nil, fieldErr(ErrInvalidConfig, fmt.Sprintf("%s[%d]", list.field, i), name, "names no column (use a name from names or input[index])")
			}
			m[col] = list.kind
		}
	}
	return m, nil
}

// feature builds one feature's reference from its values (NaN/±Inf are
// missing); kind "" means decide.
func (b *ProfileBuilder) feature(vals []float64, kind Kind) Feature {
	o := b.opts
	fin := vals[:0:0]
	for _, v := range vals {
		if finite(v) {
			fin = append(fin, v)
		}
	}
	f := Feature{Missing: int64(len(vals) - len(fin))}
	slices.Sort(fin)
	distinct := 0
	integral := true
	for i, v := range fin {
		if i == 0 || v != fin[i-1] {
			distinct++
		}
		if v != math.Trunc(v) || math.Abs(v) > 1<<24 {
			integral = false
		}
	}
	if kind == "" {
		kind = Numeric
		if len(fin) == 0 || (integral && o.MaxCategories > 0 && distinct <= o.MaxCategories) {
			kind = Categorical
		}
	}
	if kind == Categorical || len(fin) == 0 {
		f.Categorical = categorical(fin)
		return f
	}
	f.Numeric = numeric(fin, o)
	return f
}

func categorical(sorted []float64) *CategoricalRef {
	c := &CategoricalRef{}
	for i, v := range sorted {
		if i == 0 || v != sorted[i-1] {
			if len(c.Values) == MaxCategories {
				// Beyond the limit values count as other.
				c.Counts = append(c.Counts, int64(len(sorted)-i))
				return c
			}
			c.Values = append(c.Values, v)
			c.Counts = append(c.Counts, 0)
		}
		c.Counts[len(c.Counts)-1]++
	}
	if len(c.Values) == 0 {
		c.Values = []float64{0}
		c.Counts = []int64{0}
	}
	c.Counts = append(c.Counts, 0)
	return c
}

// at returns the sorted sample's value at probability q (nearest rank on
// the positions 0…n-1).
func at(sorted []float64, q float64) float64 {
	return sorted[int(math.Round(q*float64(len(sorted)-1)))]
}

func numeric(fin []float64, o ProfileOptions) *NumericRef {
	n := len(fin)
	r := &NumericRef{}
	var sum float64
	for _, v := range fin {
		sum += v
	}
	r.Mean = sum / float64(n)
	var ss float64
	for _, v := range fin {
		ss += (v - r.Mean) * (v - r.Mean)
	}
	r.Std = math.Sqrt(ss / float64(n))
	r.Grid = grid(fin, o)
	c := newNumCol(0, 0, 0, r.Grid)
	bins := []int{1, r.Grid.Cells + 1}
	for j := 1; j <= 9; j++ {
		bins = append(bins, c.cell(float32(at(fin, float64(j)/10)))+1)
	}
	slices.Sort(bins)
	r.Bins = slices.Compact(bins)
	r.Cells = make([]int64, r.Grid.Cells+2)
	for _, v := range fin {
		k := c.cell(float32(v))
		r.Cells[k]++
		switch k {
		case 0:
			r.TailSums[0] += v
		case r.Grid.Cells + 1:
			r.TailSums[1] += v
		}
	}
	return r
}

// smoothCells is how many neighbouring cells grid averages over when it
// measures the densest cell.
const smoothCells = 5

// grid picks the range, the scale and the number of cells of a numeric
// feature: a linear grid over the reference's [p0.1, p99.9] widened by
// Margin on both sides, or a sqrt grid from just below the minimum to the
// same top, whichever needs fewer cells (the sqrt grid wins for
// right-skewed values, e.g. scores of a rare class).
func grid(fin []float64, o ProfileOptions) Grid {
	lo, hi := at(fin, 0.001), at(fin, 0.999)
	span := hi - lo
	if !(span > 0) {
		span = max(1, math.Abs(lo))
	}
	top := f32up(hi + o.Margin*span)
	// Point masses: values repeated at least half a cell's allowance. They
	// sit at one point in both the reference and the traffic, so KS at cell
	// edges is exact for them and they do not call for more cells.
	n := len(fin)
	heavy := max(2, int(o.MaxCellMass*float64(n)/2))
	cont := make([]float32, 0, n)
	for i := 0; i < n; {
		j := i
		for j < n && fin[j] == fin[i] {
			j++
		}
		if j-i < heavy {
			for range j - i {
				cont = append(cont, float32(fin[i]))
			}
		}
		i = j
	}
	linear, lw := cellsFor(Grid{Lo: f32down(lo - o.Margin*span), Hi: top}, cont, n, o)
	// The sqrt grid starts below the minimum by the minimum's distance to
	// p0.1 (so its finest cells sit on the densest values).
	sqLo := f32down(min(lo, fin[0]-(lo-fin[0])))
	if sqLo >= top {
		return linear
	}
	sq, sw := cellsFor(Grid{Lo: sqLo, Hi: top, Scale: ScaleSqrt}, cont, n, o)
	if sq.Cells < linear.Cells || (sq.Cells == linear.Cells && sw < lw) {
		return sq
	}
	return linear
}

// f32down and f32up round to a float32 value at or below (above) v.
func f32down(v float64) float64 {
	f := float32(v)
	if float64(f) > v {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return float64(f)
}

func f32up(v float64) float64 {
	f := float32(v)
	if float64(f) < v {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return float64(f)
}

// cellsFor returns g with the fewest cells, between MinCells and MaxCells
// in steps of a quarter, whose densest cells hold at most MaxCellMass of
// the n reference values (of which cont are the continuous ones), and the
// densest cells' count at that size.
func cellsFor(g Grid, cont []float32, n int, o ProfileOptions) (Grid, int) {
	limit := int(o.MaxCellMass * float64(n))
	counts := make([]int, o.MaxCells+2)
	for cells := o.MinCells; ; cells = min(o.MaxCells, cells+max(1, cells/4)) {
		g.Cells = cells
		c := newNumCol(0, 0, 0, g)
		clear(counts)
		for _, v := range cont {
			counts[c.cell(v)]++
		}
		// The densest run of smoothCells cells, per cell: a single cell's
		// count is too noisy a density estimate (a 10,000-row reference
		// puts some 50 rows in a 0.5% cell).
		worst, run := 0, 0
		for k := 1; k <= cells; k++ {
			run += counts[k]
			if k > smoothCells {
				run -= counts[k-smoothCells]
			}
			worst = max(worst, run)
		}
		if worst <= limit*min(smoothCells, cells) || cells == o.MaxCells {
			return g, worst
		}
	}
}
