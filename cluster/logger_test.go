package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/modelgate/modelgate/registry"
)

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "raft")
	l.Debug("hidden")
	if l.IsDebug() || !l.IsInfo() {
		t.Fatal("levels do not follow the slog handler")
	}
	l.Named("snapshot").With("id", "1-2").Warn("slow", "took", hclog.Fmt("%dms", 12))
	l.StandardLogger(nil).Print("from a std logger")
	l.SetLevel(hclog.Error)
	l.Warn("below the floor")
	out := buf.String()
	for _, want := range []string{"level=WARN msg=slow component=raft.snapshot id=1-2 took=12ms", "from a std logger"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log output %q lacks %q", out, want)
		}
	}
	for _, not := range []string{"hidden", "below the floor"} {
		if strings.Contains(out, not) {
			t.Fatalf("log output %q has %q", out, not)
		}
	}
}

func TestUnavailableErrorText(t *testing.T) {
	known := &UnavailableError{Op: registry.OpPromote, IdempotencyKey: "k1", Err: ErrNotLeader, Leader: "127.0.0.1:9", LeaderID: "n2"}
	unknown := &UnavailableError{Op: registry.OpRegister, IdempotencyKey: "k2", Err: ErrTimeout, OutcomeUnknown: true, Cause: context.DeadlineExceeded}
	f := func(err error, targets []error, words ...string) {
		t.Helper()
		for _, target := range targets {
			if !errors.Is(err, target) {
				t.Fatalf("%v does not unwrap to %v", err, target)
			}
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%q lacks %q", err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "cluster: ") {
			t.Fatalf("%q lacks the package prefix", err)
		}
	}
	f(known, []error{ErrUnavailable, ErrNotLeader}, "promote", `"k1"`, "n2 at 127.0.0.1:9", "nothing was applied", "on the leader")
	f(unknown, []error{ErrUnavailable, ErrTimeout, context.DeadlineExceeded}, "register", "outcome is unknown", "same idempotency key")
}
