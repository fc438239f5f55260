package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/registry"
)

// errUsage marks a bad command line: main prints it and exits 2.
var errUsage = errors.New("demo: bad command line")

// How far the story goes (Config.Until).
const (
	// UntilCandidate ends the story once the retrained candidate is
	// registered and validated: the closed retraining loop, without the
	// rollout.
	UntilCandidate = "candidate"
	// UntilAll plays the whole story: rollout, promotion, the bad
	// candidate's rollback.
	UntilAll = "all"
)

// Config is one run of the demo. Flags fill it in main; the test builds
// it directly.
type Config struct {
	// Modelgate and Retrainer are the two binaries the demo runs
	// (bin/modelgate; examples/retrainer built to bin/retrainer).
	Modelgate, Retrainer string
	// ORTLib is ONNX Runtime's shared library, handed to the node.
	ORTLib string
	// Dir holds the node's data dir and both processes' logs; empty: a
	// temporary directory, removed after a successful run and kept (and
	// named) after a failed one.
	Dir string
	// Commit is the code commit the retrainer records in the candidate's
	// lineage; empty: the retrainer binary's own vcs.revision.
	Commit string

	// Rate is the scoring requests per second the traffic generator aims
	// at (one transaction each, as a payment system sends them), spread
	// over Workers connections.
	Rate    int
	Workers int
	// LabelDelay is how long after its prediction a transaction's label
	// (fraud or not) is posted to the labels API: the chargeback delay,
	// shortened.
	LabelDelay time.Duration
	// Calm is how long traffic is undrifted before the world changes.
	Calm time.Duration
	// DriftWindow is the node's drift window, which is also how often the
	// lifecycle controller looks at the statistics.
	DriftWindow time.Duration
	// Seed makes the traffic (and so the candidate's training rows)
	// reproducible.
	Seed int64

	// Until is how far the story goes: UntilCandidate or UntilAll.
	Until string
	// ChapterTimeout is the hang guard of each chapter's wait: generous,
	// since the machine may be busy; a chapter that needs it is a story
	// that did not happen.
	ChapterTimeout time.Duration
}

// DefaultConfig returns what `make demo` runs.
func DefaultConfig() Config {
	return Config{
		Modelgate:      "bin/modelgate",
		Retrainer:      "bin/retrainer",
		ORTLib:         ortlib.Path(),
		Rate:           400,
		Workers:        16,
		LabelDelay:     2 * time.Second,
		Calm:           6 * time.Second,
		DriftWindow:    time.Second,
		Seed:           2026,
		Until:          UntilAll,
		ChapterTimeout: 90 * time.Second,
	}
}

// Validate names the first setting the demo cannot run with.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case c.Modelgate == "" || c.Retrainer == "":
		return bad("--modelgate and --retrainer must name the two binaries (make build; go build -o bin/retrainer ./examples/retrainer)")
	case c.Rate < 50 || c.Rate > 5000:
		return bad("--rate (%d) must be between 50 and 5000 requests/s: the drift windows and the rollout need a few hundred rows a second", c.Rate)
	case c.Workers < 1 || c.Workers > 256:
		return bad("--workers (%d) must be between 1 and 256", c.Workers)
	case c.LabelDelay < 0 || c.LabelDelay > time.Minute:
		return bad("--label-delay (%s) must be between 0 and 1m (the node's evaluation policy waits 10m for labels here)", c.LabelDelay)
	case c.Calm < 2*c.DriftWindow:
		return bad("--calm (%s) must be at least two drift windows (%s)", c.Calm, 2*c.DriftWindow)
	case c.DriftWindow < 250*time.Millisecond || c.DriftWindow > 10*time.Second:
		return bad("--drift-window (%s) must be between 250ms and 10s: the demo is minutes long", c.DriftWindow)
	case c.Until != UntilCandidate && c.Until != UntilAll:
		return bad("--until %q must be %q or %q", c.Until, UntilCandidate, UntilAll)
	case c.ChapterTimeout < 10*time.Second:
		return bad("--chapter-timeout (%s) must be at least 10s: it is a hang guard, not a budget", c.ChapterTimeout)
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: demo [flags]\n\nmodelgate's closed loop end to end: drift, retraining, rollout, rollback, told from the audit log.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Modelgate, "modelgate", c.Modelgate, "the modelgate binary")
	fs.StringVar(&c.Retrainer, "retrainer", c.Retrainer, "the examples/retrainer binary")
	fs.StringVar(&c.ORTLib, "ort-lib", c.ORTLib, "ONNX Runtime's shared library ($"+ortlib.EnvVar+")")
	fs.StringVar(&c.Dir, "dir", "", "keep the node's data and the logs here (default: a temporary directory, kept only on failure)")
	fs.StringVar(&c.Commit, "commit", "", "code commit the retrainer records in the lineage (default: its vcs.revision)")
	fs.IntVar(&c.Rate, "rate", c.Rate, "scoring requests per second (one transaction each)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "client connections sending them")
	fs.DurationVar(&c.LabelDelay, "label-delay", c.LabelDelay, "how late each transaction's label arrives")
	fs.DurationVar(&c.Calm, "calm", c.Calm, "undrifted traffic before the drift")
	fs.DurationVar(&c.DriftWindow, "drift-window", c.DriftWindow, "the node's drift window (and the controller's interval)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "traffic seed")
	fs.StringVar(&c.Until, "until", c.Until, `how far the story goes: "candidate" (drift, retraining, candidate validated) or "all"`)
	fs.DurationVar(&c.ChapterTimeout, "chapter-timeout", c.ChapterTimeout, "hang guard of each chapter")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return c, c.Validate()
}

// The rollout the demo's policy asks for: the shape of the default ramp
// (shadow, then canary steps of rising weight) with steps of seconds and
// hundreds of requests instead of minutes and thousands, so it fits in
// the demo at a few hundred requests a second.
const (
	shadowStep     = 4 * time.Second
	canaryStep     = 5 * time.Second
	watch          = 5 * time.Second
	shadowRequests = 400
	minRequests    = 300
	// driftWindows is how many drift windows in a row must breach
	// before the alert (and the retraining request).
	driftWindows = 8
)

// demoPolicy is the model's policy for the story, written over the node's
// current one: drift judged on one-second windows, retraining through the
// retrainer's webhook, automatic promotion on AUC, and the short rollout.
func demoPolicy(p registry.Policy, webhook string) registry.Policy {
	// Windows of a few hundred rows, judged by PSI, KS and chi-squared as
	// in the retrainer's own loop test. The breach must last
	// driftWindows windows: a new merchant category breaches in the first
	// one, and waiting lets the labels of the drifted traffic reach the
	// export the job trains on (a candidate trained on calm rows only
	// would be no better than the champion, and rightly not promoted).
	drift := func(t registry.DriftThreshold) registry.DriftThreshold {
		t.MinCount, t.ConsecutiveWindows = 100, driftWindows
		return t
	}
	p.Drift.PSI, p.Drift.KS, p.Drift.Chi2P = drift(p.Drift.PSI), drift(p.Drift.KS), drift(p.Drift.Chi2P)
	p.Drift.PSI.Enabled, p.Drift.KS.Enabled, p.Drift.Chi2P.Enabled = true, true, true
	p.Drift.JS.Enabled = false
	p.Retraining = registry.RetrainingPolicy{Enabled: true, URL: webhook, SecretRef: secretRef,
		Cooldown: registry.Duration(time.Hour)}

	// Nothing waits for a person: the controller promotes on a
	// superiority test, the only kind of promotion a demo can show alone.
	p.Promotion.Mode = registry.PromotionAuto
	p.Promotion.Shadow.RequireApproval, p.Promotion.Canary.RequireApproval, p.Promotion.Champion.RequireApproval = false, false, false
	p.Promotion.Canary.MinSamples, p.Promotion.Champion.MinSamples = minRequests, minRequests
	p.Evaluation = &registry.EvaluationPolicy{Task: registry.TaskBinary, Threshold: 0.5,
		LabelDelay: registry.Duration(10 * time.Minute)}

	regression := 0.02
	p.Rollout = &registry.RolloutPolicy{
		Steps: []registry.RolloutStep{
			{Stage: registry.StageShadow, MinDuration: registry.Duration(shadowStep), MinSamples: shadowRequests},
			{Stage: registry.StageCanary, Weight: 10, MinDuration: registry.Duration(canaryStep), MinSamples: 150},
			{Stage: registry.StageCanary, Weight: 50, MinDuration: registry.Duration(canaryStep), MinSamples: 500},
		},
		// The retrained candidate gains about 0.14 AUC on the drifted
		// traffic: the always-valid test passes within 5,000-10,000
		// labelled predictions of each version (offline, with the same
		// generators: TestDemoWorldRewardsRetraining), 12-25 s of the
		// demo's traffic.
		Metric:     registry.MetricAUC,
		MinEffect:  0.02,
		Confidence: 0.95,
		MaxSamples: 100_000,
		Watch:      registry.Duration(watch),
		Triggers: registry.RolloutTriggers{
			MinRequests:  minRequests,
			MaxErrorRate: 0.01,
			// Both versions are the same logistic regression graph: a
			// ratio this wide fires only on a real slowdown, never on a
			// busy machine's scheduling noise.
			MaxP99Ratio: 5,
			// The retrained candidate's scores shift about 0.03 (PSI)
			// from the champion's; the inverted one's about 17.
			MaxScoreShift:      0.25,
			MaxLabelRegression: &regression,
		},
	}
	return p
}

// secretRef names the webhook secret in the node (serve --secret) and
// the policy.
const secretRef = "trainer"
