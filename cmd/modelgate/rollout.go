package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

func init() {
	register(command{name: "rollout", summary: "show where a model's rollout stands against each gate, and what comes next", run: runRollout})
}

const rolloutUsage = `usage: modelgate rollout MODEL [--json]

Prints the model's rollout as the node's lifecycle controller judges it
now: the candidate and its step on the ramp (or the champion in its watch),
every gate and rollback trigger with its numbers and status (pass, wait,
fired, not_judged, disabled), what the controller will do next and why,
and the last decision it took. Only the leader's controller decides; any
node reports with its own numbers.

Flags:`

// rolloutReport is GET /api/v1/models/{m}/rollout.
type rolloutReport struct {
	lifecycle.RolloutReport
	Node   string `json:"node"`
	Leader bool   `json:"leader"`
}

func runRollout(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rollout", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, rolloutUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs)
	var model string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		model, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if model == "" {
		return usageError("want a model: modelgate rollout MODEL")
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	var rep rolloutReport
	b, err := c.do("GET", "/api/v1/models/"+url.PathEscape(model)+"/rollout", nil, "", &rep)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	return renderRollout(stdout, &rep)
}

func renderRollout(w io.Writer, r *rolloutReport) error {
	role := "follower"
	if r.Leader {
		role = "leader"
	}
	fmt.Fprintf(w, "%s, node %s (%s), %s\n", r.Model, r.Node, role, r.Time.Format(time.RFC3339))
	if !r.Active {
		fmt.Fprintf(w, "\nno rollout: %s\n", r.Status)
		return renderLast(w, r.Last)
	}
	where := string(r.Stage)
	if r.Stage == registry.StageCanary {
		where += " " + registry.FormatWeight(r.Weight) + "%"
	}
	fmt.Fprintf(w, "\ncandidate v%d (%s) against v%d, phase %s", r.Candidate, where, r.Against, r.Phase)
	if r.State != nil && r.Policy != nil {
		if r.Phase == lifecycle.PhaseWatch {
			fmt.Fprintf(w, ", promoted %s", r.State.StepStarted.Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, ", step %d of %d since %s, %d requests on it", r.State.Step+1, len(r.Policy.Steps),
				r.State.StepStarted.Format(time.RFC3339), r.State.StepRequests)
		}
		if r.State.Pending {
			fmt.Fprint(w, ", a move waits for approval")
		}
	}
	fmt.Fprintln(w)
	if d := r.Next; d != nil {
		fmt.Fprintf(w, "metric %s at %g confidence\n\n", d.Metric, d.Confidence)
		renderChecks(w, d.Checks)
		fmt.Fprintf(w, "\nnext: %s — %s\n", d.Action, d.Reason)
	}
	return renderLast(w, r.Last)
}

func renderChecks(w io.Writer, checks []lifecycle.Check) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tVALUE\tLIMIT\tP\tDETAIL")
	for _, c := range checks {
		p := "-"
		if c.Test != nil {
			p = fmt.Sprintf("%.3g", c.Test.PValue)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%s\t%s\n", c.Name, c.Status, c.Value, c.Limit, p, c.Detail)
	}
	_ = tw.Flush()
}

func renderLast(w io.Writer, last *lifecycle.RolloutView) error {
	if last == nil {
		return nil
	}
	fmt.Fprintf(w, "last decision by this node's controller, %s: v%d %s — %s\n",
		last.Time.Format(time.RFC3339), last.Version, last.Decision.Action, last.Decision.Reason)
	return nil
}
