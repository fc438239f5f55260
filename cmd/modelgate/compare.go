package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/shadow"
)

func init() {
	register(command{name: "compare", summary: "compare a model's shadows and canary with its champion", run: runCompare})
	register(command{name: "eval", summary: "print a model's online evaluation per version, from labels", run: runEval})
}

const compareUsage = `usage: modelgate compare MODEL [--window 1h] [--json]

Prints, for every shadow version, how it compared with the champion on the
requests mirrored to it in the window: runs, errors, the agreement of their
decisions at the policy threshold (the 2x2 table), the score difference
(shadow - champion: mean and quantiles) and both latencies; then the
canary against the champion on their labelled predictions, and the
node's mirror counters (coverage = mirrored / served).

Flags:`

// comparisonReport is GET /api/v1/models/{m}/comparison.
type comparisonReport struct {
	Model     string  `json:"model"`
	Window    string  `json:"window"`
	Node      string  `json:"node"`
	Threshold float64 `json:"threshold"`
	Champion  int     `json:"champion"`
	Mirror    struct {
		shadow.MirrorStats
		Coverage float64 `json:"coverage"`
	} `json:"mirror"`
	Shadows []struct {
		Champion int `json:"champion"`
		Shadow   int `json:"shadow"`
		shadow.ComparisonSummary
	} `json:"shadows"`
	Canary *struct {
		Version        int            `json:"version"`
		WeightPercent  float64        `json:"weight_percent"`
		Champion       shadow.Metrics `json:"champion"`
		Canary         shadow.Metrics `json:"canary"`
		DeltaPrecision float64        `json:"delta_precision"`
		DeltaRecall    float64        `json:"delta_recall"`
		DeltaAUC       float64        `json:"delta_auc"`
		DeltaLogLoss   float64        `json:"delta_log_loss"`
	} `json:"canary"`
}

// evaluationReport is GET /api/v1/models/{m}/evaluation.
type evaluationReport struct {
	Model     string  `json:"model"`
	Window    string  `json:"window"`
	Node      string  `json:"node"`
	Task      string  `json:"task"`
	Threshold float64 `json:"threshold"`
	Versions  []struct {
		Version     int    `json:"version"`
		Role        string `json:"role"`
		Predictions uint64 `json:"predictions"`
		shadow.Metrics
	} `json:"versions"`
}

// modelWindowArgs parses MODEL [--window D] and the client flags.
func modelWindowArgs(name, usage string, args []string, stdout, stderr io.Writer) (*apiClient, string, string, error) {
	fs := newFlags(name, stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs)
	window := fs.String("window", "1h", "the horizon: a duration from 1m (1h, 24h, …)")
	var model string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		model, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return nil, "", "", err
	}
	if model == "" {
		return nil, "", "", usageError("want a model: modelgate " + name + " MODEL [--window 1h]")
	}
	if d, err := time.ParseDuration(*window); err != nil || d <= 0 {
		return nil, "", "", usageError(fmt.Sprintf("--window %q: want a duration such as 1m, 1h or 24h", *window))
	}
	c, err := client(stdout)
	if err != nil {
		return nil, "", "", err
	}
	return c, model, *window, nil
}

func runCompare(args []string, stdout, stderr io.Writer) error {
	c, model, window, err := modelWindowArgs("compare", compareUsage, args, stdout, stderr)
	if err != nil {
		return err
	}
	var rep comparisonReport
	b, err := c.do("GET", "/api/v1/models/"+url.PathEscape(model)+"/comparison?window="+url.QueryEscape(window), nil, "", &rep)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	return renderComparison(stdout, &rep)
}

func renderComparison(w io.Writer, r *comparisonReport) error {
	fmt.Fprintf(w, "%s, window %s, node %s: champion v%d, decisions at threshold %g\n", r.Model, r.Window, r.Node, r.Champion, r.Threshold)
	m := r.Mirror
	fmt.Fprintf(w, "mirror: %d served, %d mirrored (coverage %.1f%%), %d sampled out, %d dropped, %d queued\n\n",
		m.Served, m.Mirrored, 100*m.Coverage, m.SampledOut, m.Dropped, m.Queued)
	if len(r.Shadows) == 0 {
		fmt.Fprintln(w, "(no shadow versions)")
	} else {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SHADOW\tVS\tRUNS\tERRORS\tAGREE\tBOTH+\tCHAMP+ONLY\tSHADOW+ONLY\tBOTH-\tMEAN_DIFF\tP5_DIFF\tP95_DIFF\tCHAMP_P99\tSHADOW_P99")
		for _, p := range r.Shadows {
			q := func(x float64) string {
				for i, at := range p.Quantiles {
					if at == x && i < len(p.DiffQuantiles) {
						return fmt.Sprintf("%+.4f", p.DiffQuantiles[i])
					}
				}
				return "-"
			}
			a := p.Agreement
			fmt.Fprintf(tw, "v%d\tv%d\t%d\t%d\t%.2f%%\t%d\t%d\t%d\t%d\t%+.4f\t%s\t%s\t%dµs\t%dµs\n", p.Shadow, p.Champion, p.Runs, p.Errors,
				100*p.AgreementRate, a.BothPositive, a.ChampionOnly, a.ShadowOnly, a.BothNegative, p.MeanDiff, q(0.05), q(0.95),
				p.ChampionP99us, p.ShadowP99us)
		}
		tw.Flush()
	}
	if cr := r.Canary; cr != nil {
		fmt.Fprintf(w, "\ncanary v%d at %g%%, on labelled predictions (canary - champion):\n", cr.Version, cr.WeightPercent)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tLABELLED\tPRECISION\tRECALL\tAUC\tLOG_LOSS")
		fmt.Fprintf(tw, "v%d (champion)\t%d\t%.4f\t%.4f\t%.4f\t%.4f\n", r.Champion, cr.Champion.Labelled, cr.Champion.Precision, cr.Champion.Recall, cr.Champion.AUC, cr.Champion.LogLoss)
		fmt.Fprintf(tw, "v%d (canary)\t%d\t%.4f\t%.4f\t%.4f\t%.4f\n", cr.Version, cr.Canary.Labelled, cr.Canary.Precision, cr.Canary.Recall, cr.Canary.AUC, cr.Canary.LogLoss)
		fmt.Fprintf(tw, "delta\t\t%+.4f\t%+.4f\t%+.4f\t%+.4f\n", cr.DeltaPrecision, cr.DeltaRecall, cr.DeltaAUC, cr.DeltaLogLoss)
		tw.Flush()
	}
	return nil
}
