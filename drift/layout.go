package drift

import (
	"math"
	"slices"
)

// layout is a Profile compiled for the hot path: where each feature's value
// sits in a row and where its counters sit in a sketch's flat counter array.
//
// Counters: [0] is the row count; then, in profile order, each feature's
// block; then the output's block and its positives counter. A numeric block
// is [lower tail, cells 1…G, upper tail, missing]; a categorical block is
// [value 0 … value K-1, other, missing]. Sums: two per numeric feature (and
// the output), the sum of the values in the lower and upper tails, which
// make the tails exact for Wasserstein.
type layout struct {
	fp      uint64
	width   int
	nCounts int
	nSums   int
	num     []numCol // numeric features, in profile order
	cat     []catCol // categorical features, in profile order
	feats   []featRef
	out     *numCol // nil without an output
	outPos  int     // the positives counter
	thresh  float32
	// affected counts rows with a missing, out-of-range or unseen value in
	// any input feature.
	affected int
}

// featRef locates profile feature i's compiled column.
type featRef struct {
	kind Kind
	i    int // into num or cat
}

// numCol is a numeric feature's grid. With d = x−lo (√(x−lo) on a sqrt
// grid, for x ≥ lo) and t = d*scale, computed in float32, a value is in
// grid cell 1+floor(t) when 0 ≤ t < cells; below lo in cell 0, at or above
// hi in cell cells+1.
type numCol struct {
	col   int     // position in the row (-1: the score)
	off   int     // first counter
	sum   int     // first sum (lower tail; +1 upper tail)
	cells int     // G
	lo    float32 // grid start
	scale float32 // cells per unit of d
	gf    float32 // float32(cells)
	sqrt  bool
	ref   *numRef // the reference, read by comparisons (nil in a builder's scratch column)
}

func newNumCol(col, off, sum int, g Grid) numCol {
	return numCol{
		col: col, off: off, sum: sum, cells: g.Cells, lo: float32(g.Lo),
		scale: float32(float64(g.Cells) / g.unit()), gf: float32(g.Cells), sqrt: g.Scale == ScaleSqrt,
	}
}

// pos is t for x: the position on the grid in cells (negative below lo,
// NaN for NaN).
func (c *numCol) pos(x float32) float32 {
	d := x - c.lo
	if c.sqrt && d > 0 {
		d = float32(math.Sqrt(float64(d)))
	}
	return d * c.scale
}

// catCol is a categorical feature's values. With table set, an integral
// value v is value index table[v-min] (or k, other); otherwise values are
// binary searched.
type catCol struct {
	col    int
	off    int
	k      int // number of declared values; counter off+k is other, off+k+1 missing
	min    int32
	table  []uint16
	values []float32
}

// maxTable is the widest span of integral values a categorical feature gets
// a direct lookup table for.
const maxTable = 4096

func compile(p *Profile) *layout {
	l := &layout{fp: p.Fingerprint(), width: p.RowWidth(), nCounts: 1}
	for i := range p.Features {
		f := &p.Features[i]
		col := p.column(f.Input, f.Index)
		if f.Categorical != nil {
			l.feats = append(l.feats, featRef{Categorical, len(l.cat)})
			l.cat = append(l.cat, l.newCat(col, f.Categorical))
			continue
		}
		l.feats = append(l.feats, featRef{Numeric, len(l.num)})
		l.num = append(l.num, l.newNum(col, f.Numeric.Grid))
	}
	if o := p.Output; o != nil {
		c := l.newNum(-1, o.Numeric.Grid)
		l.out = &c
		l.outPos = l.nCounts
		l.nCounts++
		l.thresh = float32(o.Threshold)
	}
	l.affected = l.nCounts
	l.nCounts++
	return l
}

func (l *layout) newNum(col int, g Grid) numCol {
	c := newNumCol(col, l.nCounts, l.nSums, g)
	c.ref = new(numRef)
	l.nCounts += g.Cells + 3
	l.nSums += 2
	return c
}

func (l *layout) newCat(col int, r *CategoricalRef) catCol {
	c := catCol{col: col, off: l.nCounts, k: len(r.Values), values: make([]float32, len(r.Values))}
	l.nCounts += len(r.Values) + 2
	integral := true
	for i, v := range r.Values {
		c.values[i] = float32(v)
		if v != math.Trunc(v) || math.Abs(v) > 1<<30 {
			integral = false
		}
	}
	if integral {
		lo, hi := r.Values[0], r.Values[len(r.Values)-1]
		if hi-lo < maxTable {
			c.min = int32(lo)
			c.table = make([]uint16, int(hi-lo)+1)
			for i := range c.table {
				c.table[i] = uint16(c.k)
			}
			for i, v := range r.Values {
				c.table[int(v-lo)] = uint16(i)
			}
		}
	}
	return c
}

// cell returns the counter of x relative to the column's block:
// 0 lower tail, 1…G grid, G+1 upper tail, G+2 missing (NaN, ±Inf).
// observe inlines the same arithmetic; tests hold them equal.
func (c *numCol) cell(x float32) int {
	t := c.pos(x)
	if t >= 0 && t < c.gf {
		return 1 + int(t)
	}
	return c.outside(x, t)
}

func (c *numCol) outside(x, t float32) int {
	if d := x - x; d != d { // NaN or ±Inf
		return c.cells + 2
	}
	if t < 0 {
		return 0
	}
	return c.cells + 1
}

// index returns the counter of x relative to the block: 0…k-1 a declared
// value, k other, k+1 missing.
func (c *catCol) index(x float32) int {
	if c.table != nil {
		j := int32(x) - c.min
		if uint32(j) < uint32(len(c.table)) && float32(int32(x)) == x {
			return int(c.table[j])
		}
	} else if i, found := slices.BinarySearch(c.values, x); found {
		return i
	}
	if d := x - x; d != d {
		return c.k + 1
	}
	return c.k
}

// observe counts one row into a shard's counters and tail sums. The caller
// has checked len(row) == l.width and holds the shard.
//
// Data quality costs nothing on the common path: a numeric value off the
// grid (a tail or missing) and a categorical one that is not declared
// (other or missing) are exactly the quality problems, and they already
// leave the fast path; they only mark the row, counted once at the end.
func (l *layout) observe(cnt []uint32, sums []float64, row []float32, score float32) {
	cnt[0]++
	bad := false
	for i := range l.num {
		c := &l.num[i]
		x := row[c.col]
		d := x - c.lo
		if c.sqrt && d > 0 {
			d = float32(math.Sqrt(float64(d)))
		}
		t := d * c.scale
		if t >= 0 && t < c.gf {
			cnt[c.off+1+int(t)]++
			continue
		}
		l.tail(c, cnt, sums, x, t)
		bad = true
	}
	for i := range l.cat {
		c := &l.cat[i]
		x := row[c.col]
		var k int
		if j := int32(x) - c.min; c.table != nil && uint32(j) < uint32(len(c.table)) && float32(int32(x)) == x {
			k = int(c.table[j])
		} else {
			k = c.index(x)
		}
		cnt[c.off+k]++
		if k >= c.k {
			bad = true
		}
	}
	if c := l.out; c != nil {
		t := c.pos(score)
		if t >= 0 && t < c.gf {
			cnt[c.off+1+int(t)]++
		} else {
			l.tail(c, cnt, sums, score, t)
		}
		if score >= l.thresh {
			cnt[l.outPos]++
		}
	}
	if bad {
		cnt[l.affected]++
	}
}

// tail counts a value outside the grid: a tail (with its sum) or missing.
func (l *layout) tail(c *numCol, cnt []uint32, sums []float64, x, t float32) {
	k := c.outside(x, t)
	cnt[c.off+k]++
	switch k {
	case 0:
		sums[c.sum] += float64(x)
	case c.cells + 1:
		sums[c.sum+1] += float64(x)
	}
}
