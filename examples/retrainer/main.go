// Command retrainer is an example retraining job for modelgate: the other
// end of a model's retraining policy. It talks to modelgate only over its
// HTTP APIs, as a job in another language or on another machine would (it
// borrows the project's trainer, ONNX exporter, profile builder and
// signature check because it lives in the same module).
//
// On a signed drift event (POST /webhook) it:
//
//  1. verifies the Modelgate-Signature (HMAC-SHA256 over "<t>.<body>", t
//     within --tolerance) on the raw body: 401 naming why otherwise;
//  2. answers 202 at once, or 200 "already handled" for an event id it has
//     seen (the sender delivers at least once), and works in the
//     background, one job at a time;
//  3. pulls the labelled export the event links to (NDJSON pages, following
//     Modelgate-Next-Cursor until a page is empty), retrying network errors
//     and 408/429/5xx with backoff; keeps one row per labelled request id
//     (served rows only, one-row requests only) and hashes exactly those
//     lines (sha256), so the dataset is the export range plus its digest;
//  4. refuses (registers nothing) below --min-rows usable rows, or when the
//     training or held-out split has a single class;
//  5. trains a logistic regression (package train, as the demo model), holds
//     out --holdout of the rows by a hash of their id to measure AUC and
//     log-loss, builds the drift reference profile from the training rows
//     and their scores, exports ONNX;
//  6. registers it as a candidate with its lineage: export link and cursors,
//     digest, code commit (vcs.revision or --commit), metrics, parent
//     version (the event's), the profile, and golden pairs the node's
//     validation gate checks against ONNX Runtime. The idempotency key is
//     the event id, so even a redelivery after this process restarted
//     cannot register a second version.
//
// GET /status shows the last job's outcome, GET /jobs the remembered jobs,
// GET /jobs/{id}?wait=60s one job, once it has ended.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// drainTimeout is how long a SIGTERM waits for running jobs before
// cancelling them (a job mid-registration is safe to cancel: its
// idempotency key lets a re-sent event finish it).
const drainTimeout = 2 * time.Minute

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "retrainer:", err)
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer cancelJobs()
	r, err := newRetrainer(jobCtx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--listen): %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: r.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("retrainer listening", "webhook", "http://"+ln.Addr().String()+"/webhook", "admin", cfg.Admin,
		"model", or(cfg.Model, "(any)"), "min_rows", cfg.MinRows, "commit", cfg.Commit)
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-sigCtx.Done():
	}
	log.Info("stopping: no new events; waiting for running jobs", "timeout", drainTimeout)
	shCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	srv.Shutdown(shCtx)
	if err := r.wait(shCtx); err != nil {
		cancelJobs()
		log.Error("jobs still running at the drain deadline were cancelled: re-send their events", "err", err)
		return nil
	}
	log.Info("stopped")
	return nil
}
