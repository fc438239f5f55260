package main

import (
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/modelgate/modelgate/shadow"
)

const evalUsage = `usage: modelgate eval MODEL [--window 1h] [--json]

Prints every version's online evaluation from the labels of predictions
made in the window (champion, canary and shadows alike): labelled rows,
precision, recall, F1, accuracy, AUC, log-loss and Brier with their 95%
intervals (MAE and RMSE for a regression). PREDICTIONS is what the version
answered on this node since it started, served and shadow runs.

Flags:`

func runEval(args []string, stdout, stderr io.Writer) error {
	c, model, window, err := modelWindowArgs("eval", evalUsage, args, stdout, stderr)
	if err != nil {
		return err
	}
	var rep evaluationReport
	b, err := c.do("GET", "/api/v1/models/"+url.PathEscape(model)+"/evaluation?window="+url.QueryEscape(window), nil, "", &rep)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	return renderEvaluation(stdout, &rep)
}

func renderEvaluation(w io.Writer, r *evaluationReport) error {
	fmt.Fprintf(w, "%s, window %s, node %s: %s", r.Model, r.Window, r.Node, r.Task)
	if r.Task == shadow.Binary.String() {
		fmt.Fprintf(w, ", decisions at threshold %g", r.Threshold)
	}
	fmt.Fprint(w, "\n\n")
	if len(r.Versions) == 0 {
		fmt.Fprintln(w, "(no versions)")
		return nil
	}
	ci := func(v float64, i shadow.Interval) string { return fmt.Sprintf("%.4f [%.3f,%.3f]", v, i.Low, i.High) }
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if r.Task == shadow.Regression.String() {
		fmt.Fprintln(tw, "VERSION\tROLE\tPREDICTIONS\tLABELLED\tMAE\tRMSE")
		for _, v := range r.Versions {
			fmt.Fprintf(tw, "v%d\t%s\t%d\t%d\t%s\t%s\n", v.Version, v.Role, v.Predictions, v.Labelled, ci(v.MAE, v.MAECI), ci(v.RMSE, v.RMSECI))
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "VERSION\tROLE\tPREDICTIONS\tLABELLED\tPRECISION\tRECALL\tF1\tACCURACY\tAUC\tLOG_LOSS\tBRIER")
	for _, v := range r.Versions {
		fmt.Fprintf(tw, "v%d\t%s\t%d\t%d\t%s\t%s\t%.4f\t%s\t%s\t%s\t%s\n", v.Version, v.Role, v.Predictions, v.Labelled,
			ci(v.Precision, v.PrecisionCI), ci(v.Recall, v.RecallCI), v.F1, ci(v.Accuracy, v.AccuracyCI),
			ci(v.AUC, v.AUCCI), ci(v.LogLoss, v.LogLossCI), ci(v.Brier, v.BrierCI))
	}
	return tw.Flush()
}
