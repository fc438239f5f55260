// Command demo runs modelgate's closed loop end to end on one machine and
// tells it from the audit log: `make demo`.
//
// It starts a real node (the modelgate binary, a temporary data dir,
// loopback ports, drift windows of a second) with the demo fraud model as
// champion, and the example retraining job (examples/retrainer) as a
// process of its own, then plays a story in chapters:
//
//  1. calm traffic: a few hundred one-row scoring requests a second, their
//     labels (chargebacks) posted to the labels API seconds later;
//  2. the world changes: most fraud now follows a new pattern (the fraud
//     generator's concept drift) and a new merchant category appears (its
//     new-category drift), which moves the inputs;
//  3. the node's drift alert fires the signed retraining webhook; the job
//     pulls the labelled export, trains and registers a candidate, which
//     the validation gate passes;
//  4. the candidate goes through shadow and canary and is promoted by the
//     lifecycle controller, on its rollout policy's evidence;
//  5. a deliberately bad candidate (the demo model with its weights
//     inverted: it loads, runs and passes validation, and is wrong) is
//     registered and pulled back automatically; the champion stays.
//
// Every chapter is a wait on audit records (or registry state) with a
// hang guard; the timeline of the audit log is printed as it happens, with
// the numbers behind each decision, and again at the end. Every client
// request (scoring and labels) is counted; one that fails fails the demo.
// The exit status is 0 only if the whole story happened.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stdout)
		fmt.Fprintln(os.Stdout, "DEMO FAILED:", err)
		if res != nil && res.LogDir != "" {
			fmt.Fprintln(os.Stdout, "the node's and the retrainer's logs are in", res.LogDir)
		}
		os.Exit(1)
	}
}

// logf writes one line of the demo's narration.
func logf(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, format+"\n", a...)
}
