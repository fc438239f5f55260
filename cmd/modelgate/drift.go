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
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/registry"
)

func init() {
	register(command{name: "drift", summary: "print a model version's drift: status, alerts, data quality and statistics per feature", run: runDrift})
}

const driftUsage = `usage: modelgate drift MODEL [--version N] [--window 1h] [--node ID | --cluster] [--json]

Prints the drift judgement the lifecycle controller makes of a version (the
champion without --version), under the model's drift policy: its status —
bootstrapping (with the reference's progress), no data, not enough data
(with the row count), no drift or DRIFT —, the share of drifted features,
the alerts sustained over consecutive runs of pooled windows, data quality
(NaN/inf, out of range, unseen categories, rows affected) and, per feature
and for the output score, the statistics with their p-values, BREACH where
the policy's corrected tests reject, and the share of rows per bin in the
reference and now. --window judges that horizon's traffic instead.

In a cluster the output says which view it shows: the leader's shows the
cluster's (every node's pushed windows merged: what its controller
judges), a follower's its own traffic. --cluster asks the leader for the
cluster's view from any node; --node ID shows one node's own (on the leader,
any node's windows as pushed to it).

Flags:`

func runDrift(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("drift", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, driftUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs)
	ver := fs.String("version", "", "the version (default: the champion)")
	window := fs.String("window", "", "judge this horizon's traffic (1m, 1h, 24h) instead of the controller's pooled runs")
	node := fs.String("node", "", "in a cluster: this node's own view (another node's: ask the leader, or add --cluster)")
	clusterView := fs.Bool("cluster", false, "in a cluster: the leader's view (the merge of every node's windows), from any node")
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
	if *window != "" {
		if d, err := time.ParseDuration(*window); err != nil || d <= 0 {
			return usageError(fmt.Sprintf("--window %q: want a duration such as 1m, 1h or 24h", *window))
		}
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
	q := url.Values{}
	if *window != "" {
		q.Set("window", *window)
	}
	if *node != "" {
		q.Set("node", *node)
	}
	if *clusterView {
		q.Set("consistent", "true") // answered by the leader
	}
	path := base + "/versions/" + strconv.Itoa(version) + "/drift"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v gateway.DriftView
	b, err := c.do("GET", path, nil, "", &v)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	return renderView(stdout, model, version, &v)
}

// renderView writes the verdict first — status and summary, the policy,
// the runs judged, the alerts, data quality — then, when there is a
// report, its table.
func renderView(w io.Writer, model string, version int, v *gateway.DriftView) error {
	fmt.Fprintf(w, "%s v%d: %s\n", model, version, v.Summary)
	switch v.View {
	case gateway.ViewCluster:
		var using, stale []string
		for _, n := range v.Nodes {
			if n.Stale {
				stale = append(stale, n.ID)
			} else {
				using = append(using, n.ID)
			}
		}
		fmt.Fprintf(w, "view: the cluster's, merged on the leader %s from nodes %s", v.Node, strings.Join(using, ", "))
		if len(stale) > 0 {
			fmt.Fprintf(w, " (left out, no push for too long: %s)", strings.Join(stale, ", "))
		}
		fmt.Fprintln(w)
	case gateway.ViewNode:
		fmt.Fprintf(w, "view: node %s's own traffic (the leader judges the cluster's: --cluster)\n", v.Node)
	}
	if v.Bootstrap != nil {
		fmt.Fprintln(w, "\nNo reference profile was registered with this version: it is being sampled from")
		fmt.Fprintln(w, "the scored rows (the drift policy's reference_sample_size and reference_period).")
		fmt.Fprintln(w, "Nothing is judged until it is complete.")
		return nil
	}
	fmt.Fprintf(w, "policy: %s\n", v.Policy)
	if len(v.Runs) > 0 {
		parts := make([]string, len(v.Runs))
		for i, r := range v.Runs {
			parts[i] = fmt.Sprintf("%s %d rows/%d windows", statusWord(r.Status), r.Rows, r.Windows)
		}
		fmt.Fprintf(w, "runs (oldest first): %s\n", strings.Join(parts, "; "))
	}
	for _, a := range v.Alerts {
		what := a.Statistic
		if a.Statistic != drift.StatDriftShare {
			label := a.Name
			if label == "" {
				label = fmt.Sprintf("%s[%d]", a.Input, a.Index)
			}
			what = label + " " + a.Statistic
		}
		fmt.Fprintf(w, "ALERT %s: breached in %d runs in a row\n", what, len(a.Values))
	}
	r := v.Report
	if r == nil {
		return nil
	}
	// The view's status is the report's: on the wire one "status" field
	// carries both, and the outer one is what decodes.
	r.Status = v.Status
	fmt.Fprintf(w, "data quality: %d of %d rows affected (%s)\n", r.Quality.RowsAffected, r.Rows, share(r.Quality.RowsAffected, r.Rows))
	title := fmt.Sprintf("%s v%d, newest run", model, version)
	if v.Window != "" {
		title = fmt.Sprintf("%s v%d, window %s", model, version, v.Window)
	}
	fmt.Fprintln(w)
	return renderDrift(w, title, r)
}

func statusWord(s string) string {
	switch s {
	case drift.StatusDrift:
		return "DRIFT"
	case drift.StatusNoDrift:
		return "no drift"
	case drift.StatusNotEnoughData:
		return "not enough data"
	case drift.StatusNoData:
		return "no data"
	}
	return s
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
	var verdict string
	switch r.Status {
	case drift.StatusNoData:
		verdict = "no data"
	case drift.StatusNotEnoughData:
		verdict = fmt.Sprintf("not enough data (%d of the %d rows a judgement needs)", r.Rows, r.MinCount)
	case drift.StatusDrift:
		verdict = fmt.Sprintf("DRIFT: %d of %d breach, drift share %.2f of %d judged features", breaches, len(r.Features), r.DriftShare, r.JudgedFeatures)
	default:
		verdict = "no drift"
	}
	fmt.Fprintf(w, "%s: %d rows against %d reference rows — %s\n\n", title, r.Rows, r.ReferenceRows, verdict)
	if len(r.Features) == 0 {
		fmt.Fprintln(w, "(the report has no features)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tKIND\tCOUNT\tPSI\tJS\tKS\tWASSERSTEIN\tCHI2_P\tMIN_P\tQUALITY\tSTATUS\tREFERENCE\tCURRENT")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, f.Kind, f.Count,
			fmtStat(f.PSI, "%.3f"), fmtStat(f.JS, "%.3f"), fmtStat(f.KS, "%.3f"),
			fmtStat(f.Wasserstein, "%.3f"), fmtStat(f.Chi2P, "%.2g"), fmtStat(minP(f), "%.2g"), quality(f.Quality), mark, ref, cur)
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

// minP is the smallest (uncorrected) p-value of a feature's tests: how
// close it came to breaching; the breach itself is Holm-corrected.
func minP(f *drift.FeatureReport) *float64 {
	var out *float64
	for _, p := range []*float64{f.PSIP, f.JSP, f.KSP, f.Chi2P} {
		if p != nil && (out == nil || *p < *out) {
			out = p
		}
	}
	return out
}

// quality is a feature's data-quality cell: the problems seen, or "-".
func quality(q drift.Quality) string {
	var parts []string
	if q.Missing > 0 {
		parts = append(parts, fmt.Sprintf("nan/inf %d", q.Missing))
	}
	if q.OutOfRange > 0 {
		parts = append(parts, fmt.Sprintf("out of range %d", q.OutOfRange))
	}
	if q.Unseen > 0 {
		parts = append(parts, fmt.Sprintf("unseen %d", q.Unseen))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
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
