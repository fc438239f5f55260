package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The page is XHTML-compatible (every element closed, only numeric or XML
// entities) so it parses as XML too; it has no scripts, fonts or links.
const htmlHead = `<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en">
<head>
<meta charset="utf-8"/>
<title>%s</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1000px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; }
td.l, th.l { text-align: left; }
.note { color: #a40000; }
svg { display: block; margin: 0.5em 0 1.5em 0; }
svg text { font-family: sans-serif; font-size: 11px; fill: #333; }
</style>
</head>
<body>
`

// palette colours series and phases.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// WriteHTML writes the report as one self-contained HTML page with inline
// SVG plots: latency percentiles over time, throughput over time (scenario
// actions and phase starts marked on both), and the latency distribution
// of every phase.
func (r *Report) WriteHTML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	e := html.EscapeString
	title := "modelgate bench: " + r.Label
	if r.Config.Scenario.Name != "" {
		title += " — " + r.Config.Scenario.Name
	}
	fmt.Fprintf(bw, htmlHead, e(title))
	fmt.Fprintf(bw, "<h1>%s</h1>\n", e(title))
	fmt.Fprintf(bw, "<p>target %s, model %s, started %s, %.1f s. Machine: %d cores, %s, %s %s/%s.</p>\n",
		e(r.Config.Target), e(r.Config.Model), e(r.Started.Format("2006-01-02 15:04:05 MST")), r.Duration,
		r.Machine.Cores, e(r.Machine.CPU), e(r.Machine.GoVersion), e(r.Machine.OS), e(r.Machine.Arch))
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "<p class=\"note\">%s</p>\n", e(n))
	}

	bw.WriteString("<h2>Phases</h2>\n<table>\n<tr><th class=\"l\">phase</th><th>mode</th><th>target</th><th>achieved rps</th><th>sent</th><th>ok</th><th>errors</th><th>late sends</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n")
	for _, p := range r.Phases {
		target := fmt.Sprintf("%d conns", p.Connections)
		if p.Mode == "open" {
			target = fmt.Sprintf("%.0f rps", p.TargetRate)
		}
		errs := make([]string, 0, len(p.Errors))
		for k, n := range p.Errors {
			errs = append(errs, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(errs)
		l := p.Latency
		fmt.Fprintf(bw, "<tr><td class=\"l\">%s</td><td>%s</td><td>%s</td><td>%.0f</td><td>%d</td><td>%d</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			e(p.Name), p.Mode, target, p.AchievedRate, p.Sent, p.OK, e(strings.Join(errs, ", ")), p.LateSends,
			fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max))
	}
	bw.WriteString("</table>\n<h2>By answering version</h2>\n<table>\n<tr><th class=\"l\">phase</th><th class=\"l\">version</th><th>ok</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n")
	for _, p := range r.Phases {
		for _, v := range sortedKeys(p.Versions) {
			l := p.Versions[v]
			fmt.Fprintf(bw, "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				e(p.Name), e(v), l.Count, fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max))
		}
	}
	bw.WriteString("</table>\n")

	marks := r.marks()
	ts := make([]float64, len(r.Timeline))
	p50 := make([]float64, len(r.Timeline))
	p99 := make([]float64, len(r.Timeline))
	rps := make([]float64, len(r.Timeline))
	errs := make([]float64, len(r.Timeline))
	for i, t := range r.Timeline {
		ts[i], p50[i], p99[i], rps[i], errs[i] = t.T, t.P50, t.P99, t.RPS, float64(t.Errors)
	}
	bw.WriteString("<h2>Latency over time (per second)</h2>\n")
	timePlot(bw, ts, []series{{"p50", palette[0], p50}, {"p99", palette[1], p99}}, true, r.Duration, marks)
	bw.WriteString("<h2>Throughput over time</h2>\n")
	timePlot(bw, ts, []series{{"answers/s", palette[2], rps}, {"errors/s", palette[1], errs}}, false, r.Duration, marks)
	bw.WriteString("<h2>Answers per second by model version</h2>\n")
	timePlot(bw, ts, r.versionSeries(), false, r.Duration, marks)
	bw.WriteString("<h2>Latency distribution</h2>\n")
	curvePlot(bw, r.Phases)

	if len(r.Actions) > 0 {
		bw.WriteString("<h2>Scenario actions</h2>\n<table>\n<tr><th>due</th><th>fired</th><th>took</th><th class=\"l\">action</th><th class=\"l\">result</th></tr>\n")
		for _, a := range r.Actions {
			res := "ok"
			if a.Error != "" {
				res = a.Error
			}
			fmt.Fprintf(bw, "<tr><td>%.2f s</td><td>%.2f s</td><td>%.0f ms</td><td class=\"l\">%s</td><td class=\"l\">%s</td></tr>\n", a.At, a.Fired, a.Took, e(a.Detail), e(res))
		}
		bw.WriteString("</table>\n")
	}
	bw.WriteString("<p>Latencies of open-loop phases count from each request's intended send time whenever the harness was behind (coordinated omission corrected). report.json has every figure.</p>\n</body>\n</html>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bench: cannot write the HTML report: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// versionSeries is each answering version's answers per second, tick by
// tick: what a canary rollout looks like.
func (r *Report) versionSeries() []series {
	seen := map[string]bool{}
	for _, t := range r.Timeline {
		for v := range t.Versions {
			seen[v] = true
		}
	}
	var ss []series
	for i, v := range sortedKeys(seen) {
		vals := make([]float64, len(r.Timeline))
		for j, t := range r.Timeline {
			if t.Requests > 0 {
				vals[j] = float64(t.Versions[v]) * t.RPS / float64(t.Requests)
			}
		}
		name := "v" + v
		if v == "" {
			name = "(no version)"
		}
		ss = append(ss, series{name, palette[i%len(palette)], vals})
	}
	return ss
}

// mark is a labelled instant on the time axis.
type mark struct {
	t     float64
	label string
	color string
}

// marks are the phase starts and the fired actions.
func (r *Report) marks() []mark {
	var m []mark
	for _, p := range r.Phases {
		m = append(m, mark{p.Start, p.Name, "#999"})
	}
	for _, a := range r.Actions {
		c := "#9467bd"
		if a.Error != "" {
			c = "#d62728"
		}
		m = append(m, mark{a.Fired, a.Do, c})
	}
	return m
}

// series is one line of a plot.
type series struct {
	name  string
	color string
	vals  []float64
}

// Plot geometry, in SVG units.
const (
	plotW, plotH                   = 900.0, 300.0
	padL, padR, padT, padB         = 70.0, 20.0, 24.0, 40.0
	innerW, innerH                 = plotW - padL - padR, plotH - padT - padB
	svgOpen                        = `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">` + "\n"
	minLogUS               float64 = 1
)

// axis maps data values to pixels, linearly or on a log10 scale.
type axis struct {
	lo, hi float64
	log    bool
}

func (a axis) frac(v float64) float64 {
	if a.log {
		v = math.Log10(max(v, minLogUS))
	}
	if a.hi <= a.lo {
		return 0
	}
	return min(max((v-a.lo)/(a.hi-a.lo), 0), 1)
}

// valueAxis fits an axis to vals: log decades for latencies, a rounded
// linear range from zero otherwise.
func valueAxis(vals [][]float64, log bool) (axis, []float64) {
	hi := 0.0
	for _, vs := range vals {
		for _, v := range vs {
			hi = max(hi, v)
		}
	}
	if log {
		top := math.Ceil(math.Log10(max(hi, 10)))
		ticks := []float64{}
		for d := 0.0; d <= top; d++ {
			ticks = append(ticks, math.Pow(10, d))
		}
		return axis{0, top, true}, ticks
	}
	if hi <= 0 {
		hi = 1
	}
	step := math.Pow(10, math.Floor(math.Log10(hi/5)))
	for hi/step > 6 {
		step *= 2
	}
	top := math.Ceil(hi/step) * step
	ticks := []float64{}
	for k := 0.0; k*step <= top+step/2; k++ {
		ticks = append(ticks, k*step)
	}
	return axis{0, top, false}, ticks
}

// timePlot draws series over time (seconds) with marks.
func timePlot(w *bufio.Writer, ts []float64, ss []series, logY bool, duration float64, marks []mark) {
	fmt.Fprintf(w, svgOpen, plotW, plotH, plotW, plotH)
	vals := make([][]float64, len(ss))
	for i, s := range ss {
		vals[i] = s.vals
	}
	ya, yticks := valueAxis(vals, logY)
	xa, xticks := valueAxis([][]float64{{math.Max(duration, 1)}}, false)
	frame(w)
	for _, v := range yticks {
		y := padT + innerH*(1-ya.frac(v))
		label := num(v)
		if logY {
			label = fmtUS(v)
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			padL, y, padL+innerW, y, padL-6, y+4, html.EscapeString(label))
	}
	for _, v := range xticks {
		x := padL + innerW*xa.frac(v)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%ss</text>`+"\n", x, padT+innerH+16, num(v))
	}
	for i, m := range marks {
		x := padL + innerW*xa.frac(m.t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4,3"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			x, padT, x, padT+innerH, m.color, x+3, padT+12+float64(i%4)*12, html.EscapeString(m.label))
	}
	for i, s := range ss {
		if len(ts) > 0 {
			var b strings.Builder
			for j, v := range s.vals {
				fmt.Fprintf(&b, "%.1f,%.1f ", padL+innerW*xa.frac(ts[j]), padT+innerH*(1-ya.frac(v)))
			}
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.TrimSpace(b.String()))
		}
		legend(w, i, s.name, s.color)
	}
	if len(ts) == 0 {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">no per-second samples (run shorter than a second)</text>`+"\n", padL+innerW/2, padT+innerH/2)
	}
	w.WriteString("</svg>\n")
}

// curvePlot draws each phase's percentile curve: x is the percentile on a
// "nines" scale (-log10(1-p)), y the latency on a log scale.
func curvePlot(w *bufio.Writer, phases []PhaseReport) {
	fmt.Fprintf(w, svgOpen, plotW, plotH, plotW, plotH)
	vals := make([][]float64, 0, len(phases))
	for _, p := range phases {
		v := make([]float64, len(p.Distribution))
		for i, pt := range p.Distribution {
			v[i] = pt.US
		}
		vals = append(vals, v)
	}
	ya, yticks := valueAxis(vals, true)
	const maxNines = 5.0 // 99.999%
	nines := func(p float64) float64 { return math.Min(-math.Log10(math.Max(1-p/100, 1e-9)), maxNines) }
	xa := axis{0, maxNines, false}
	frame(w)
	for _, v := range yticks {
		y := padT + innerH*(1-ya.frac(v))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			padL, y, padL+innerW, y, padL-6, y+4, html.EscapeString(fmtUS(v)))
	}
	for i, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		x := padL + innerW*xa.frac(float64(i))
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, padT+innerH+16, label)
	}
	for i, p := range phases {
		c := palette[i%len(palette)]
		var b strings.Builder
		for _, pt := range p.Distribution {
			fmt.Fprintf(&b, "%.1f,%.1f ", padL+innerW*xa.frac(nines(pt.Percentile)), padT+innerH*(1-ya.frac(pt.US)))
		}
		if b.Len() > 0 {
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c, strings.TrimSpace(b.String()))
		}
		legend(w, i, p.Name, c)
	}
	w.WriteString("</svg>\n")
}

// num formats an axis value without float noise (1.2, not
// 1.2000000000000002) or exponents.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// frame draws the plot's axes.
func frame(w *bufio.Writer) {
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", padL, padT, innerW, innerH)
}

// legend writes entry i of the legend, above the plot.
func legend(w *bufio.Writer, i int, name, color string) {
	x := padL + float64(i)*140
	y := padT - 8
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
		x, y-4, x+18, y-4, color, x+24, y, html.EscapeString(name))
}
