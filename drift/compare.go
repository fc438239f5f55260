package drift

import (
	"fmt"
	"slices"
	"sync"
)

// Statistic names, as they appear in reports, thresholds and alerts.
const (
	StatPSI         = "psi"
	StatJS          = "js"
	StatKS          = "ks"
	StatWasserstein = "wasserstein"
	StatChi2P       = "chi2_p"
)

// Threshold is how one statistic is judged. The JSON field names match the
// registry's drift policy, so a policy threshold converts field for field
// (PolicyFromThresholds says what each field then means).
type Threshold struct {
	Enabled bool `json:"enabled"`
	// Threshold: in a Policy, the least value of the statistic that may
	// breach once its test rejects (a minimum effect; unused for chi2_p).
	// In the registry's fixed thresholds it was the breach level itself.
	Threshold float64 `json:"threshold"`
	// MinCount is the number of rows a judgement needs before the
	// statistic is judged (its value is reported regardless); Evaluate
	// pools windows until they hold it.
	MinCount int64 `json:"min_count"`
	// ConsecutiveWindows is how many judgements in a row (windows, or runs
	// of pooled windows) must breach before an alert.
	ConsecutiveWindows int `json:"consecutive_windows"`
}

// Thresholds holds one Threshold per statistic.
type Thresholds struct {
	PSI         Threshold `json:"psi"`
	JS          Threshold `json:"js"`
	KS          Threshold `json:"ks"`
	Wasserstein Threshold `json:"wasserstein"`
	Chi2P       Threshold `json:"chi2_p"`
}

// DefaultThresholds returns the thresholds of the registry's default drift
// policy: PSI 0.2, JS distance 0.1, KS 0.1, χ² p-value 0.01, each judged
// from 1,000 rows and alerting after 3 windows in a row; Wasserstein (0.5
// reference standard deviations) reported but disabled. Judged through
// PolicyFromThresholds they are DefaultPolicy (see doc.go).
func DefaultThresholds() Thresholds {
	t := func(v float64, on bool) Threshold {
		return Threshold{Enabled: on, Threshold: v, MinCount: 1000, ConsecutiveWindows: 3}
	}
	return Thresholds{PSI: t(0.2, true), JS: t(0.1, true), KS: t(0.1, true), Wasserstein: t(0.5, false), Chi2P: t(0.01, true)}
}

func (t *Thresholds) each(f func(name string, th *Threshold) bool) {
	_ = f(StatPSI, &t.PSI) && f(StatJS, &t.JS) && f(StatKS, &t.KS) &&
		f(StatWasserstein, &t.Wasserstein) && f(StatChi2P, &t.Chi2P)
}

// Validate returns a *FieldError naming the first bad threshold.
func (t Thresholds) Validate() error {
	var err error
	t.each(func(name string, th *Threshold) bool {
		bad := func(field string, v any, reason string) bool {
			err = fieldErr(ErrInvalidThresholds, name+"."+field, v, reason)
			return false
		}
		switch {
		case !finite(th.Threshold) || th.Threshold < 0:
			return bad("threshold", th.Threshold, "must be a finite number >= 0")
		case th.MinCount < 0:
			return bad("min_count", th.MinCount, "must be >= 0")
		case th.ConsecutiveWindows < 0:
			return bad("consecutive_windows", th.ConsecutiveWindows, "must be >= 0 (0 means 1)")
		case th.Enabled && name == StatChi2P && !(th.Threshold > 0 && th.Threshold < 1):
			return bad("threshold", th.Threshold, "must be in (0, 1): it is a p-value")
		case th.Enabled && (name == StatJS || name == StatKS) && th.Threshold > 1:
			return bad("threshold", th.Threshold, "must be <= 1")
		}
		return true
	})
	return err
}

// Compare computes every statistic of s against p and judges them by the
// Policy of th (PolicyFromThresholds). s must come from p's fingerprint
// (ErrLayoutMismatch otherwise).
func Compare(p *Profile, s *Sketch, th Thresholds) (*Report, error) {
	if err := th.Validate(); err != nil {
		return nil, err
	}
	return ComparePolicy(p, s, PolicyFromThresholds(th))
}

// ComparePolicy computes every statistic of s against p and judges them by
// pol. s must come from p's fingerprint (ErrLayoutMismatch otherwise).
func ComparePolicy(p *Profile, s *Sketch, pol Policy) (*Report, error) {
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if fp := p.Fingerprint(); fp != s.lay.fp {
		return nil, fmt.Errorf("%w: cannot compare a sketch of profile %016x with profile %016x", ErrLayoutMismatch, s.lay.fp, fp)
	}
	st := s.read()
	return compareState(p, s.lay, &st, pol.withDefaults()), nil
}

func compareState(p *Profile, l *layout, st *state, pol Policy) *Report {
	r := &Report{Rows: int64(st.counts[0]), ReferenceRows: p.Rows}
	for i := range p.Features {
		f := &p.Features[i]
		ref := l.feats[i]
		var fr FeatureReport
		if ref.kind == Categorical {
			fr = compareCategorical(f, &l.cat[ref.i], st)
		} else {
			fr = compareNumeric(f, &l.num[ref.i], st)
		}
		fr.Quality.ReferenceShare = referenceQuality(f, p.Rows)
		r.Features = append(r.Features, fr)
	}
	if o := p.Output; o != nil {
		fr := compareNumeric(&o.Feature, l.out, st)
		fr.Output = true
		fr.Quality.ReferenceShare = referenceQuality(&o.Feature, p.Rows)
		if valid := fr.Count - fr.Missing; valid > 0 {
			fr.PositiveRate = ptr(float64(st.counts[l.outPos]) / float64(valid))
		}
		if valid := p.Rows - o.Missing; valid > 0 {
			fr.ReferencePositiveRate = ptr(float64(o.Positives) / float64(valid))
		}
		r.Features = append(r.Features, fr)
	}
	r.Quality.RowsAffected = int64(st.counts[l.affected])
	if r.Rows > 0 {
		r.Quality.Share = float64(r.Quality.RowsAffected) / float64(r.Rows)
	}
	judge(r, pol)
	return r
}

// referenceQuality is the share of the reference's rows that would count
// as a quality problem of the feature: missing, in a tail of the grid, or
// "other".
func referenceQuality(f *Feature, rows int64) float64 {
	if rows <= 0 {
		return 0
	}
	bad := f.Missing
	if n := f.Numeric; n != nil {
		bad += n.Cells[0] + n.Cells[len(n.Cells)-1]
	} else if c := f.Categorical; c != nil {
		bad += c.Counts[len(c.Counts)-1]
	}
	return float64(bad) / float64(rows)
}

func ptr(v float64) *float64 { return &v }

func compareCategorical(f *Feature, c *catCol, st *state) FeatureReport {
	block := st.counts[c.off : c.off+c.k+2]
	fr := FeatureReport{Input: f.Input, Index: f.Index, Name: f.Name, Kind: Categorical,
		Count: int64(st.counts[0]), Missing: int64(block[c.k+1])}
	fr.Reference = Histogram{Values: f.Categorical.Values, Counts: f.Categorical.Counts, Missing: f.Missing}
	fr.Current = Histogram{Values: f.Categorical.Values, Counts: make([]int64, c.k+1), Missing: fr.Missing}
	for i := range fr.Current.Counts {
		fr.Current.Counts[i] = int64(block[i])
	}
	fr.Reference.Shares = shares(fr.Reference.Counts)
	fr.Current.Shares = shares(fr.Current.Counts)
	if fr.Count == 0 {
		return fr
	}
	fr.Quality = Quality{Missing: fr.Missing, Unseen: int64(block[c.k])}
	fr.Quality.Share = float64(fr.Quality.Missing+fr.Quality.Unseen) / float64(fr.Count)
	ref, cur := withMissing(fr.Reference, fr.Current)
	fr.PSI = ptr(psi(ref, cur))
	fr.JS = ptr(jsDistance(ref, cur))
	psiP, jsP, chi2P, exact := binPValues(ref, cur, false)
	fr.PSIP, fr.JSP, fr.Chi2P, fr.Exact = ptr(psiP), ptr(jsP), ptr(chi2P), exact
	return fr
}

func compareNumeric(f *Feature, c *numCol, st *state) FeatureReport {
	nr := f.Numeric
	block := st.counts[c.off : c.off+c.cells+3]
	fr := FeatureReport{Input: f.Input, Index: f.Index, Name: f.Name, Kind: Numeric,
		Count: int64(st.counts[0]), Missing: int64(block[c.cells+2])}
	ref := c.reference(nr)
	edges := slices.Clone(ref.edges)
	refBins := slices.Clone(ref.bins)
	fr.Reference = Histogram{Edges: edges, Counts: refBins, Shares: shares(refBins), Missing: f.Missing}
	cur := make([]int64, len(nr.Bins)+1)
	for cell, n := range block[:c.cells+2] {
		cur[ref.binOf[cell]] += int64(n)
	}
	fr.Current = Histogram{Edges: edges, Counts: cur, Shares: shares(cur), Missing: fr.Missing}
	if fr.Count == 0 {
		return fr
	}
	fr.Quality = Quality{Missing: fr.Missing, OutOfRange: int64(block[0] + block[c.cells+1])}
	fr.Quality.Share = float64(fr.Quality.Missing+fr.Quality.OutOfRange) / float64(fr.Count)
	rh, ch := withMissing(fr.Reference, fr.Current)
	fr.PSI = ptr(psi(rh, ch))
	fr.JS = ptr(jsDistance(rh, ch))
	psiP, jsP, _, exact := binPValues(rh, ch, true)
	fr.PSIP, fr.JSP, fr.Exact = ptr(psiP), ptr(jsP), exact
	valid := fr.Count - fr.Missing
	if valid == 0 {
		return fr
	}
	curCells := make([]float64, c.cells+2)
	for i := range curCells {
		curCells[i] = float64(block[i])
	}
	refCDF := ref.cdf
	curCDF := cellCDF(nr.Grid, curCells, st.sums[c.sum], st.sums[c.sum+1])
	ks, w := ksWasserstein(refCDF, curCDF)
	if !finite(ks) {
		return fr // cannot happen with validated inputs; never emit NaN
	}
	fr.KS = ptr(min(1, ks))
	fr.KSP = ptr(KSPValue(*fr.KS, ref.rows, valid))
	if nr.Std > 0 && finite(w/nr.Std) {
		fr.Wasserstein = ptr(w / nr.Std)
	}
	return fr
}

// binOf returns the coarse bin of a cell.
func binOf(bins []int, cell int) int {
	lo, hi := 0, len(bins)
	for lo < hi { // first boundary > cell
		m := (lo + hi) / 2
		if bins[m] <= cell {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func shares(counts []int64) []float64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	s := make([]float64, len(counts))
	if n == 0 {
		return s
	}
	for i, c := range counts {
		s[i] = float64(c) / float64(n)
	}
	return s
}

// withMissing returns both histograms as float counts, with a missing bin
// appended when either side has missing values.
func withMissing(ref, cur Histogram) ([]float64, []float64) {
	n := len(ref.Counts)
	extra := 0
	if ref.Missing > 0 || cur.Missing > 0 {
		extra = 1
	}
	r := make([]float64, n+extra)
	c := make([]float64, n+extra)
	for i := range n {
		r[i], c[i] = float64(ref.Counts[i]), float64(cur.Counts[i])
	}
	if extra == 1 {
		r[n], c[n] = float64(ref.Missing), float64(cur.Missing)
	}
	return r, c
}

// cellCDF is the CDF of a numeric feature's cells (the reference's or a
// sketch's, read the same way so their errors do not add up): exact at the
// cell edges, linear inside a cell, and each tail a point mass at the mean
// of its values (exact for Wasserstein whenever the two CDFs do not cross
// inside the tail). cells are the Cells+2 counts of a numeric block.
func cellCDF(g Grid, cells []float64, sumLo, sumHi float64) *cdf {
	var n float64
	for _, v := range cells {
		n += v
	}
	c := &cdf{x: make([]float64, 0, len(cells)+1), left: make([]float64, 0, len(cells)+1), right: make([]float64, 0, len(cells)+1)}
	if n == 0 {
		return c
	}
	acc := cells[0]
	if acc > 0 {
		c.knot(min(sumLo/acc, g.Lo), 0, acc/n)
	}
	for e := 0; e <= g.Cells; e++ {
		if e > 0 {
			acc += cells[e]
		}
		f := min(acc/n, 1)
		c.knot(g.Edge(e+1), f, f)
	}
	if t := cells[g.Cells+1]; t > 0 {
		c.knot(max(sumHi/t, g.Hi), min(acc/n, 1), 1)
	}
	return c
}

// numRef is what every comparison with a numeric feature's reference
// reads and nothing changes: computed once per compiled layout.
type numRef struct {
	once  sync.Once
	edges []float64 // the coarse bins' edges
	bins  []int64   // the reference's coarse bin counts
	binOf []int     // each cell's coarse bin
	cdf   *cdf      // the reference's CDF on the grid
	rows  int64     // the reference's non-missing values
}

// reference returns the column's reference data, computing it on first use.
func (c *numCol) reference(nr *NumericRef) *numRef {
	r := c.ref
	r.once.Do(func() {
		r.edges = make([]float64, len(nr.Bins))
		for i, b := range nr.Bins {
			r.edges[i] = nr.Grid.Edge(b)
		}
		r.binOf = make([]int, len(nr.Cells))
		r.bins = make([]int64, len(nr.Bins)+1)
		cells := make([]float64, len(nr.Cells))
		for cell, n := range nr.Cells {
			r.binOf[cell] = binOf(nr.Bins, cell)
			r.bins[r.binOf[cell]] += n
			cells[cell] = float64(n)
			r.rows += n
		}
		r.cdf = cellCDF(nr.Grid, cells, nr.TailSums[0], nr.TailSums[1])
	})
	return r
}

// hypothesis is the test a statistic's breach rests on: Wasserstein rests
// on KS (the same two CDFs), every other statistic on its own p-value.
func hypothesis(stat string) string {
	if stat == StatWasserstein {
		return StatKS
	}
	return stat
}

// pValue returns the p-value of the named test of f, if it has one.
func (f *FeatureReport) pValue(test string) (float64, bool) {
	_, p := f.fields(test)
	return value(p)
}

// judge sets the breaches of every feature and the report's verdict: every
// enabled statistic of every feature with at least its MinCount rows puts
// its test's p-value into one family, Holm's procedure at pol.Alpha decides
// which tests reject, and a statistic breaches when its test rejects and
// its value reaches the statistic's Threshold (its minimum effect; not for
// chi2_p, a p-value itself).
func judge(r *Report, pol Policy) {
	pol = pol.withDefaults()
	r.Alpha, r.MinCount = pol.Alpha, pol.minCount()
	type key struct {
		feature int
		test    string
	}
	var keys []key
	var ps []float64
	seen := map[key]bool{}
	judged := make([]bool, len(r.Features))
	for i := range r.Features {
		f := &r.Features[i]
		pol.Thresholds.each(func(name string, t *Threshold) bool {
			if !t.Enabled || f.Count < t.MinCount {
				return true
			}
			k := key{i, hypothesis(name)}
			p, ok := f.pValue(k.test)
			if !ok || seen[k] {
				return true
			}
			seen[k] = true
			judged[i] = true
			keys = append(keys, k)
			ps = append(ps, p)
			return true
		})
	}
	r.Tests = len(ps)
	rejected := map[key]bool{}
	for j, rej := range holm(ps, pol.Alpha) {
		if rej {
			rejected[keys[j]] = true
		}
	}
	for i := range r.Features {
		f := &r.Features[i]
		f.Breach, f.Breaches = false, nil
		pol.Thresholds.each(func(name string, t *Threshold) bool {
			if !t.Enabled || f.Count < t.MinCount || !rejected[key{i, hypothesis(name)}] {
				return true
			}
			if v, ok := f.Stat(name); ok && (name == StatChi2P || v >= t.Threshold) {
				f.Breaches = append(f.Breaches, name)
				f.Breach = true
			}
			return true
		})
		r.Breach = r.Breach || f.Breach
		if !f.Output && judged[i] {
			r.JudgedFeatures++
			if f.Breach {
				r.DriftedFeatures++
			}
		}
	}
	if r.JudgedFeatures > 0 {
		r.DriftShare = float64(r.DriftedFeatures) / float64(r.JudgedFeatures)
		r.DatasetDrift = r.DriftShare >= pol.DriftShare
	}
	switch {
	case r.Rows == 0:
		r.Status = StatusNoData
	case r.Rows < r.MinCount:
		r.Status = StatusNotEnoughData
	case r.Breach:
		r.Status = StatusDrift
	default:
		r.Status = StatusNoDrift
	}
}
