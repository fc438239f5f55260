package main

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/registry"
)

func init() {
	register(command{name: "drift", summary: "print a model version's drift: statistics and histograms per feature", run: runDrift})
}

const driftUsage = `usage: modelgate drift MODEL [--version N] [--window 1m|1h|24h] [--json]

Prints, for every feature and the output score, the drift statistics of the
window against the version's reference profile (psi, js, ks, wasserstein,
chi2_p), BREACH where the model's drift policy is crossed, and the share of
rows per bin in the reference and now. Without --version: the champion.

Flags:`

func runDrift(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("drift", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, driftUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs)
	ver := fs.String("version", "", "the version (default: the champion)")
	window := fs.String("window", "1h", "the horizon: 1m (the current window), 1h, 24h, or another duration the node keeps")
	var model string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		model, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if model == "" {
		return usageError("want a model: modelgate drift MODEL [--version N] [--window 1h]")
	}
	if d, err := time.ParseDuration(*window); err != nil || d <= 0 {
		return usageError(fmt.Sprintf("--window %q: want a duration such as 1m, 1h or 24h", *window))
	}
	version := 0
	if *ver != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(*ver, "v"))
		if err != nil || n <= 0 {
			return usageError(fmt.Sprintf("--version %q: want a version number", *ver))
		}
		version = n
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	base := "/api/v1/models/" + url.PathEscape(model)
	if version == 0 {
		var m registry.Model
		if _, err := c.do("GET", base, nil, "", &m); err != nil {
			return err
		}
		if m.Champion == 0 {
			return fmt.Errorf("model %s has no champion yet: pass --version N", model)
		}
		version = m.Champion
	}
	var rep drift.Report
	b, err := c.do("GET", base+"/versions/"+strconv.Itoa(version)+"/drift?window="+url.QueryEscape(*window), nil, "", &rep)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	return renderDrift(stdout, fmt.Sprintf("%s v%d, window %s", model, version, *window), &rep)
}

// renderDrift writes a report as a table: one row per feature (the output
// score last) with its statistics (blank where they do not apply), BREACH
// and the breached statistics, and the reference and current shares per
// bin as block characters on a common scale.
func renderDrift(w io.Writer, title string, r *drift.Report) error {
	breaches := 0
	for i := range r.Features {
		if r.Features[i].Breach {
			breaches++
		}
	}
	verdict := "no drift"
	if r.Breach {
		verdict = fmt.Sprintf("DRIFT: %d of %d breach", breaches, len(r.Features))
	}
	fmt.Fprintf(w, "%s: %d rows against %d reference rows — %s\n\n", title, r.Rows, r.ReferenceRows, verdict)
	if len(r.Features) == 0 {
		fmt.Fprintln(w, "(the report has no features)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tKIND\tCOUNT\tPSI\tJS\tKS\tWASSERSTEIN\tCHI2_P\tSTATUS\tREFERENCE\tCURRENT")
	row := func(f *drift.FeatureReport) {
		label := f.Label()
		if f.Output {
			label += " (output)"
		}
		mark := ""
		if f.Breach {
			mark = "BREACH " + strings.Join(f.Breaches, ",")
		}
		ref, cur := sparkPair(f.Reference.Shares, f.Current.Shares)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, f.Kind, f.Count,
			fmtStat(f.PSI, "%.3f"), fmtStat(f.JS, "%.3f"), fmtStat(f.KS, "%.3f"),
			fmtStat(f.Wasserstein, "%.3f"), fmtStat(f.Chi2P, "%.2g"), mark, ref, cur)
	}
	var outputs []*drift.FeatureReport
	for i := range r.Features {
		if f := &r.Features[i]; f.Output {
			outputs = append(outputs, f)
		} else {
			row(f)
		}
	}
	for _, f := range outputs {
		row(f)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nREFERENCE and CURRENT: share of rows per bin on one scale per feature — numeric: below the")
	fmt.Fprintln(w, "reference range, its deciles, above it; categorical: each declared value, then other.")
	for _, f := range outputs {
		if f.PositiveRate != nil || f.ReferencePositiveRate != nil {
			fmt.Fprintf(w, "%s: positive rate %s now, %s in the reference\n", f.Label(), fmtPct(f.PositiveRate), fmtPct(f.ReferencePositiveRate))
		}
	}
	for i := range r.Features {
		if f := &r.Features[i]; f.Missing > 0 || f.Reference.Missing > 0 {
			fmt.Fprintf(w, "%s: %s missing now (%d rows), %d missing in the reference\n", f.Label(), share(f.Missing, f.Count), f.Missing, f.Reference.Missing)
		}
	}
	return nil
}

func fmtStat(p *float64, format string) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(format, *p)
}

func fmtPct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100**p)
}

func share(n, of int64) string {
	if of == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

// blocks are the eight heights of a bar; an empty bin is a space.
var blocks = []rune("▁▂▃▄▅▆▇█")

// sparkPair draws two sets of shares as bars on a common scale (the largest
// share of either is a full block), so the eye compares them directly. A
// bin with any share gets at least the lowest block, so a new category or a
// filled tail is never invisible.
func sparkPair(a, b []float64) (string, string) {
	top := 0.0
	for _, v := range a {
		top = max(top, v)
	}
	for _, v := range b {
		top = max(top, v)
	}
	draw := func(xs []float64) string {
		if len(xs) == 0 {
			return "-"
		}
		var sb strings.Builder
		for _, v := range xs {
			switch {
			case !(v > 0) || top == 0:
				sb.WriteRune(' ')
			default:
				k := int(math.Ceil(v/top*float64(len(blocks)))) - 1
				sb.WriteRune(blocks[min(max(k, 0), len(blocks)-1)])
			}
		}
		return "│" + sb.String() + "│"
	}
	return draw(a), draw(b)
}
