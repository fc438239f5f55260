package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/train"
)

// Environment variables read when the matching flag is not given, so the
// secrets stay out of the process list.
const (
	envSecret = "RETRAINER_SECRET"
	envToken  = "MODELGATE_TOKEN"
)

// maxPageRows is the most rows the node's export answers at once.
const maxPageRows = 10_000

// errUsage marks a configuration error: main prints it with the usage and
// exits 2.
var errUsage = errors.New("retrainer: bad configuration")

// Config is everything a retrainer needs. Flags fill it in main; tests
// build it directly.
type Config struct {
	// Listen is the webhook receiver's address.
	Listen string
	// Secret is the HMAC key the model's retraining policy names
	// (secret_ref; the node's serve --secret NAME=VALUE).
	Secret []byte
	// Tolerance is how far a signature's timestamp may be from this
	// clock: replays older than it are refused.
	Tolerance time.Duration
	// Admin is the node's admin API (http://host:port). The export link of
	// an event must be on the same origin: the job sends Token there.
	Admin string
	// Token is a bearer token with the read and register scopes.
	Token string
	// Model, when set, is the only model this job retrains; events for
	// another model are refused (422).
	Model string

	// Input is the model input the export rows carry the features in, and
	// Output the score output the reference profile describes: what the
	// exported ONNX graph names them.
	Input, Output string
	// FeatureNames name the columns in the exported model and its profile;
	// empty: the parent version's (from its ONNX metadata), if it has them.
	FeatureNames []string
	// Threshold is the decision threshold recorded in the profile.
	Threshold float64

	// MinRows is the policy: fewer usable labelled rows than this and the
	// job refuses to register anything.
	MinRows int
	// MaxRows caps the rows pulled from the export (memory bound).
	MaxRows int
	// Holdout is the share of rows (picked by a hash of the request id, so
	// a re-export splits the same way) kept out of training to measure AUC
	// and log-loss.
	Holdout float64
	// Train configures the logistic regression.
	Train train.LogisticConfig

	// Attempts and Backoff: each admin API call is tried this many times,
	// waiting Backoff, 2×Backoff, … between tries, on network errors, 408,
	// 429 and 5xx.
	Attempts int
	Backoff  time.Duration
	// PageRows is the export's page size (the node's limit parameter).
	PageRows int

	// Commit and Repo are the code lineage recorded with each candidate.
	Commit, Repo string
}

// DefaultConfig returns the settings main starts from.
func DefaultConfig() Config {
	return Config{
		Listen:    "127.0.0.1:9090",
		Tolerance: 5 * time.Minute,
		Input:     onnxexport.InputName,
		Output:    onnxexport.OutputName,
		Threshold: 0.5,
		MinRows:   1000,
		MaxRows:   1_000_000,
		Holdout:   0.2,
		Train:     train.DefaultLogisticConfig(),
		Attempts:  4,
		Backoff:   time.Second,
		PageRows:  maxPageRows,
	}
}

// Validate names the first setting the retrainer cannot run with.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case len(c.Secret) == 0:
		return bad("no webhook secret: pass --secret or set %s (the value the node's serve --secret NAME=VALUE gives the policy's secret_ref)", envSecret)
	case c.Admin == "":
		return bad("--admin is required: the node's admin API, e.g. http://127.0.0.1:8081")
	case c.Token == "":
		return bad("no admin token: pass --token or set %s (a token with the read and register scopes)", envToken)
	case c.Tolerance <= 0:
		return bad("--tolerance (%s) must be positive", c.Tolerance)
	case c.MinRows < 2:
		return bad("--min-rows (%d) must be at least 2", c.MinRows)
	case c.MaxRows < c.MinRows:
		return bad("--max-rows (%d) must be at least --min-rows (%d)", c.MaxRows, c.MinRows)
	case !(c.Holdout > 0 && c.Holdout < 1):
		return bad("--holdout (%v) must be in (0, 1)", c.Holdout)
	case c.Attempts < 1:
		return bad("--attempts (%d) must be at least 1", c.Attempts)
	case c.Backoff < 0:
		return bad("--backoff (%s) must not be negative", c.Backoff)
	case c.PageRows < 1 || c.PageRows > maxPageRows:
		return bad("--page-rows (%d) must be between 1 and the node's page limit %d", c.PageRows, maxPageRows)
	case c.Input == "" || c.Output == "":
		return bad("--input and --output must name the model's input and output tensors")
	case math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0):
		return bad("--threshold (%v) must be a finite number", c.Threshold)
	case c.Commit == "":
		return bad("cannot tell the code commit for the lineage: this binary has no VCS stamp (build it inside the git checkout without -buildvcs=false, which GOFLAGS may set) and --commit was not given")
	}
	u, err := url.Parse(c.Admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("--admin %q is not an http(s) URL", c.Admin)
	}
	for i, n := range c.FeatureNames {
		if n == "" || strings.Contains(n, ",") {
			return bad("--feature-names: name %d (%q) is empty or holds a comma", i, n)
		}
	}
	if err := c.Train.Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// parseFlags fills a Config from the command line and the environment.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("retrainer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	secret := fs.String("secret", "", "webhook signing secret (default $"+envSecret+")")
	token := fs.String("token", "", "admin API bearer token with the read and register scopes (default $"+envToken+")")
	names := fs.String("feature-names", "", "comma-separated feature names (default: the parent version's)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the webhook receiver")
	fs.DurationVar(&c.Tolerance, "tolerance", c.Tolerance, "how old (or how far in the future) a signature's timestamp may be")
	fs.StringVar(&c.Admin, "admin", "", "the node's admin API, e.g. http://127.0.0.1:8081 (required)")
	fs.StringVar(&c.Model, "model", "", "retrain only this model (default: any model whose policy points here)")
	fs.StringVar(&c.Input, "input", c.Input, "the input tensor the features are logged under")
	fs.StringVar(&c.Output, "output", c.Output, "the score output named in the reference profile")
	fs.Float64Var(&c.Threshold, "threshold", c.Threshold, "decision threshold recorded in the reference profile")
	fs.IntVar(&c.MinRows, "min-rows", c.MinRows, "refuse to register a model trained on fewer usable labelled rows")
	fs.IntVar(&c.MaxRows, "max-rows", c.MaxRows, "read at most this many usable rows from the export")
	fs.Float64Var(&c.Holdout, "holdout", c.Holdout, "share of rows held out to measure AUC and log-loss")
	fs.Float64Var(&c.Train.L2, "l2", c.Train.L2, "ridge penalty of the logistic regression")
	fs.Float64Var(&c.Train.LearningRate, "learning-rate", c.Train.LearningRate, "Adam's initial step")
	fs.IntVar(&c.Train.Epochs, "epochs", c.Train.Epochs, "passes over the training rows")
	fs.IntVar(&c.Train.BatchSize, "batch-size", c.Train.BatchSize, "rows per gradient step")
	fs.Int64Var(&c.Train.Seed, "seed", c.Train.Seed, "shuffle seed (the same rows and seed give the same model bytes)")
	fs.IntVar(&c.Attempts, "attempts", c.Attempts, "tries per admin API call (network errors, 408, 429, 5xx)")
	fs.DurationVar(&c.Backoff, "backoff", c.Backoff, "wait before the second try; doubled each time")
	fs.IntVar(&c.PageRows, "page-rows", c.PageRows, "rows per export page")
	fs.StringVar(&c.Commit, "commit", "", "code commit recorded in the lineage (default: this binary's vcs.revision)")
	fs.StringVar(&c.Repo, "repo", "", "code repository recorded in the lineage (default: this binary's module path)")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	c.Secret = []byte(firstNonEmpty(*secret, getenv(envSecret)))
	c.Token = firstNonEmpty(*token, getenv(envToken))
	if *names != "" {
		c.FeatureNames = strings.Split(*names, ",")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		commit, repo := buildLineage(bi)
		c.Commit = firstNonEmpty(c.Commit, commit)
		c.Repo = firstNonEmpty(c.Repo, repo)
	}
	c.Admin = strings.TrimRight(c.Admin, "/")
	return c, c.Validate()
}

// buildLineage reads the code commit and repository from a binary's build
// information: vcs.revision, marked "-dirty" when the tree had uncommitted
// changes (vcs.modified), because a model trained by uncommitted code
// cannot be reproduced from the commit alone.
func buildLineage(bi *debug.BuildInfo) (commit, repo string) {
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if commit != "" && modified {
		commit += "-dirty"
	}
	return commit, bi.Main.Path
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const usage = `usage: retrainer --admin URL [flags]

An example retraining job for modelgate. It receives the node's signed
retraining webhook on POST /webhook, pulls the labelled export the event
links to, trains a logistic regression on it, and registers the result as
a candidate version with its lineage and reference profile. GET /status
shows the last job, GET /jobs/{id}?wait=30s one job (waiting for it to end).

Flags:
`
