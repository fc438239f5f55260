package gateway

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// The rules a row can break, as the refusal and the metric name them.
const (
	ruleNonFinite = "non_finite"
	ruleRange     = "range"
	ruleUnseen    = "unseen_category"
)

// columnRule is what one column of a row must satisfy.
type columnRule struct {
	col      int
	label    string // the feature's name, or input[index]
	finite   bool
	min, max float64   // -Inf/+Inf when a bound is absent
	ranged   bool      // min or max declared
	values   []float32 // declared categories (nil: no category rule)
}

// rowRules are a version's hard constraints compiled against its row
// layout: immutable, swapped whole through versionDrift.rules. Nil (the
// default) costs the scoring path one atomic load.
type rowRules struct {
	spec    registry.DriftConstraints // what they were compiled from
	prof    *drift.Profile            // and against (nil while bootstrapping)
	cols    []columnRule
	unknown []string // range features the row has no column for
}

// refusal is a row that broke a rule: which, where, and the value.
type refusal struct {
	row   int
	rule  string
	c     *columnRule
	value float32
}

// compileRules compiles spec for d's rows: features by the profile's
// labels when there is a profile, else by the model's feature names or
// input[index]; category rules only with a profile (the declared values
// are the reference's). It returns nil when spec asks for nothing.
func compileRules(d *versionDrift, spec *registry.DriftConstraints, prof *drift.Profile) *rowRules {
	if spec == nil || (!spec.RefuseNonFinite && !spec.RefuseUnseenCategories && len(spec.Ranges) == 0) {
		return nil
	}
	rr := &rowRules{spec: *spec, prof: prof}
	byLabel := map[string]int{}
	cols := make([]columnRule, d.width)
	for j := range cols {
		cols[j] = columnRule{col: j, label: d.labels[j], min: math.Inf(-1), max: math.Inf(1), finite: spec.RefuseNonFinite}
	}
	if prof != nil && prof.RowWidth() == d.width {
		offsets := map[string]int{}
		off := 0
		for _, in := range prof.Inputs {
			offsets[in.Name] = off
			off += in.Width
		}
		for i := range prof.Features {
			f := &prof.Features[i]
			j := offsets[f.Input] + f.Index
			if j < 0 || j >= len(cols) {
				continue
			}
			cols[j].label = f.Label()
			if spec.RefuseUnseenCategories && f.Categorical != nil {
				cols[j].values = make([]float32, len(f.Categorical.Values))
				for k, v := range f.Categorical.Values {
					cols[j].values[k] = float32(v)
				}
			}
		}
	}
	for j := range cols {
		byLabel[cols[j].label] = j
		byLabel[d.labels[j]] = j
		byLabel[d.columns[j]] = j // input[index] always works
	}
	for _, r := range spec.Ranges {
		j, ok := byLabel[r.Feature]
		if !ok {
			rr.unknown = append(rr.unknown, r.Feature)
			continue
		}
		cols[j].ranged = true
		if r.Min != nil {
			cols[j].min = *r.Min
		}
		if r.Max != nil {
			cols[j].max = *r.Max
		}
	}
	for _, c := range cols {
		if c.finite || c.ranged || c.values != nil {
			rr.cols = append(rr.cols, c)
		}
	}
	return rr
}

// check returns the first row of c that breaks a rule. It reads the rows
// as observe does (scratch for non-FP32 inputs) and does not allocate.
func (rr *rowRules) check(d *versionDrift, c *runtime.Call, scratch *[]float32) (refusal, bool) {
	first := &c.Inputs[orderOf(c, d.inputs[0])]
	if len(first.Shape) == 0 {
		return refusal{}, true
	}
	rows := int(first.Shape[0])
	for r := 0; r < rows; r++ {
		row := d.row(c, r, scratch)
		for k := range rr.cols {
			cr := &rr.cols[k]
			v := row[cr.col]
			f := float64(v)
			switch {
			case math.IsNaN(f) || math.IsInf(f, 0):
				if cr.finite {
					return refusal{row: r, rule: ruleNonFinite, c: cr, value: v}, false
				}
			case cr.ranged && (f < cr.min || f > cr.max):
				return refusal{row: r, rule: ruleRange, c: cr, value: v}, false
			case cr.values != nil && !slices.Contains(cr.values, v):
				return refusal{row: r, rule: ruleUnseen, c: cr, value: v}, false
			}
		}
	}
	return refusal{}, true
}

// message says what was refused and why, naming the feature, the rule and
// the policy field that set it.
func (f refusal) message(model string) string {
	v := strconv.FormatFloat(float64(f.value), 'g', -1, 32)
	var why string
	switch f.rule {
	case ruleNonFinite:
		why = "is " + v + ", and the drift policy refuses values that are not finite (policy.drift.constraints.refuse_non_finite)"
	case ruleRange:
		why = fmt.Sprintf("is %s, outside its declared range [%g, %g] (policy.drift.constraints.ranges)", v, f.c.min, f.c.max)
	case ruleUnseen:
		why = "is " + v + ", a category the reference profile does not declare, and the drift policy refuses unseen categories (policy.drift.constraints.refuse_unseen_categories)"
	}
	return "row " + strconv.Itoa(f.row) + ": feature " + strconv.Quote(f.c.label) + " " + why + "; model " + strconv.Quote(model) + " refuses the request, nothing was answered"
}

// SetConstraints gives every monitored version of model the hard
// constraints spec (nil: none), compiled against its current reference;
// a version whose spec and reference are unchanged keeps its rules. It
// returns, per version whose rules changed, the range features its rows
// have no column for (so the caller can tell the operator once).
func (c *Catalog) SetConstraints(model string, spec *registry.DriftConstraints) map[string][]string {
	r := c.table().Model(model)
	if r == nil {
		return nil
	}
	var out map[string][]string
	for _, v := range r.Versions() {
		if unknown := v.Attach.SetConstraints(spec); len(unknown) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[v.Slot.Version] = unknown
		}
	}
	return out
}

// SetConstraints gives the version's drift monitor the hard constraints
// spec, as Catalog.SetConstraints does; a loader calls it before the
// version takes traffic. It returns the range features the rows have no
// column for, when the rules changed.
func (o *VersionObservers) SetConstraints(spec *registry.DriftConstraints) []string {
	d := o.drift.Load()
	if d == nil {
		return nil
	}
	var prof *drift.Profile
	if w := d.windows.Load(); w != nil {
		prof = w.Profile()
	}
	old := d.rules.Load()
	switch {
	case spec == nil && old == nil:
		return nil
	case spec != nil && old != nil && old.prof == prof && reflect.DeepEqual(old.spec, *spec):
		return nil
	}
	rr := compileRules(d, spec, prof)
	d.rules.Store(rr)
	if rr == nil {
		return nil
	}
	return rr.unknown
}

// refuseRow answers a request whose row broke a hard constraint: 400, and
// modelgate_rows_refused_total counts it by feature and rule.
func (s *Server) refuseRow(ctx *fasthttp.RequestCtx, model, version string, f refusal) {
	s.Metrics.set.GetOrCreateCounter(`modelgate_rows_refused_total{model="` + escLabel(model) + `",version="` + escLabel(version) +
		`",feature="` + escLabel(f.c.label) + `",rule="` + f.rule + `"}`).Inc()
	s.fail(ctx, model, fasthttp.StatusBadRequest, f.message(model))
}

// featureLabels are the labels of a row's columns before a profile names
// them: input[index] (columns), and the model's feature names when it
// declares one per column (labels; else the same).
func featureLabels(sig *runtime.Signature, ins, widths []int, names []string) (columns, labels []string) {
	for k, i := range ins {
		for j := 0; j < widths[k]; j++ {
			columns = append(columns, sig.Inputs[i].Name+"["+strconv.Itoa(j)+"]")
		}
	}
	labels = slices.Clone(columns)
	if len(names) == len(labels) {
		for j, n := range names {
			if n = strings.TrimSpace(n); n != "" {
				labels[j] = n
			}
		}
	}
	return columns, labels
}
