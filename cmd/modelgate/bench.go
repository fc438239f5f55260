package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelgate/modelgate/bench"
)

func init() {
	register(command{name: "bench", summary: "load a scoring endpoint (open or closed loop, scenarios) and write report.json and report.html", run: runBench})
}

const benchUsage = `modelgate bench --target URL --model NAME (--connections C | --rate R [--poisson]) --duration D --out DIR [--baseline bare|nethttp --model-file F.onnx]
modelgate bench --target URL --model NAME --scenario FILE --out DIR [--admin URL --token T]
modelgate bench suite [--duration D] [--rounds N] [--update BENCHMARKS.md]
    (or --compare features) the standard comparison: the gateway with drift and
    prediction logging each off and on, against the bare and net/http baselines

Closed loop (--connections): C connections, each sending as soon as it is
answered. Open loop (--rate): R requests a second (uniform, or Poisson with
--poisson), latency from each request's intended send time. Scenarios
(bench/scenarios/*.json) list phases and actions (register, canary,
promote, rollback, kill/start/restart a node) at given times.
`

// runBench is `modelgate bench`.
func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "suite" {
		return runBenchSuite(args[1:], stdout, stderr)
	}
	for i, a := range args { // --compare features is the suite's comparison
		if (a == "--compare" || a == "-compare") && i+1 < len(args) && args[i+1] == "features" {
			return runBenchSuite(append(append([]string{}, args[:i]...), args[i+2:]...), stdout, stderr)
		}
		if a == "--compare=features" || a == "-compare=features" {
			return runBenchSuite(append(append([]string{}, args[:i]...), args[i+1:]...), stdout, stderr)
		}
	}
	fs := newFlags("bench", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	target := fs.String("target", "http://127.0.0.1:8080", "the scoring endpoint's base URL")
	model := fs.String("model", "fraud", "the model scored (POST /v2/models/NAME/infer)")
	conns := fs.Int("connections", 0, "closed loop: connections (with --rate: the most requests in flight)")
	rate := fs.Float64("rate", 0, "open loop: requests per second")
	poisson := fs.Bool("poisson", false, "open loop: Poisson arrivals instead of uniform")
	duration := fs.Duration("duration", 10*time.Second, "how long to run (without --scenario)")
	out := fs.String("out", "bench-out", "directory for report.json and report.html")
	scenario := fs.String("scenario", "", "scenario file (JSON: phases and actions); replaces --rate/--connections/--duration")
	bodyFile := fs.String("body-file", "", "request bodies, one OIP JSON body per line (default: synthetic transactions)")
	rows := fs.Int("rows", 1, "transactions per generated request")
	seed := fs.Int64("seed", 7, "generator seed")
	admin := fs.String("admin", envOr("MODELGATE_ADMIN", ""), "admin API URL, for scenario actions and labels (env MODELGATE_ADMIN)")
	token := fs.String("token", os.Getenv("MODELGATE_TOKEN"), "admin bearer token (env MODELGATE_TOKEN)")
	scoreToken := fs.String("score-token", os.Getenv("MODELGATE_SCORE_TOKEN"), "bearer token sent with scoring requests (env MODELGATE_SCORE_TOKEN)")
	labelFraction := fs.Float64("label-fraction", 0, "fraction of answered requests whose label is POSTed to the labels API")
	labelDelay := fs.Duration("label-delay", time.Second, "how long after the answer a label is sent")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	label := fs.String("label", "", "name of the system under test in the report (default: the target)")
	quiet := fs.Bool("quiet", false, "no progress line")
	baselineKind := fs.String("baseline", "", "also start a baseline server (bare or nethttp) on --model-file and measure it the same way, into DIR/baseline-KIND")
	modelFile := fs.String("model-file", "", "the ONNX file the baseline serves (the same model as the target's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := bench.Config{
		Label: *label, Target: strings.TrimRight(*target, "/"), Model: *model,
		ScoreToken: *scoreToken, Admin: strings.TrimRight(*admin, "/"), Token: *token,
		Rows: *rows, Seed: *seed, BodyFile: *bodyFile,
		LabelFraction: *labelFraction, LabelDelay: bench.Duration(*labelDelay),
		Timeout: bench.Duration(*timeout), Progress: !*quiet,
	}
	if cfg.Label == "" {
		cfg.Label = cfg.Target
	}
	if *scenario != "" {
		if set["rate"] || set["connections"] || set["duration"] || set["poisson"] {
			return usageError("--scenario sets the phases: drop --rate, --connections, --duration and --poisson")
		}
		s, err := bench.LoadScenario(*scenario)
		if err != nil {
			return err
		}
		cfg.Scenario = *s
	} else {
		if *rate <= 0 && *conns <= 0 {
			return usageError("want --connections C (closed loop) or --rate R (open loop), or --scenario FILE")
		}
		if *poisson && *rate <= 0 {
			return usageError("--poisson needs --rate")
		}
		if *duration <= 0 {
			return usageError("--duration must be positive")
		}
		name := "closed"
		if *rate > 0 {
			name = "open"
		}
		cfg.Scenario = bench.Scenario{Name: name, Phases: []bench.Phase{{
			Name: name, Duration: bench.Duration(*duration), Rate: *rate, Poisson: *poisson, Connections: *conns,
		}}}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := benchTarget(ctx, cfg, cfg.Label, cfg.Target, *out, stdout, stderr); err != nil {
		return err
	}
	if *baselineKind == "" {
		return nil
	}
	if *modelFile == "" {
		return usageError("--baseline needs --model-file, the ONNX file the target serves")
	}
	p, err := startBaseline(*baselineKind, *modelFile)
	if err != nil {
		return err
	}
	defer p.stop()
	_, err = benchTarget(ctx, cfg, "baseline "+*baselineKind, p.url, filepath.Join(*out, "baseline-"+*baselineKind), stdout, stderr)
	return err
}

// benchTarget runs cfg against a target that is already started, prints
// the table to stdout and writes out/report.json and out/report.html. It
// is the hook for baselines: start a baseline server, then call this with
// its URL and a label ("bare", "nethttp") and an out directory of its own.
func benchTarget(ctx context.Context, cfg bench.Config, label, target, out string, stdout, stderr io.Writer) (*bench.Report, error) {
	rep, err := bench.RunTarget(ctx, cfg, label, target, stderr)
	if err != nil {
		return nil, err
	}
	if err := rep.WriteText(stdout); err != nil {
		return rep, err
	}
	if err := rep.WriteFiles(out); err != nil {
		return rep, err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "report.html"))
	return rep, nil
}
