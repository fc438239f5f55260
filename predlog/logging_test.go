package predlog

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// lines is a slog handler's writer that hands each line to the test.
type lines chan string

func (c lines) Write(p []byte) (int, error) {
	select {
	case c <- string(p):
	default: // the test stopped reading; never block the log
	}
	return len(p), nil
}

func captureLogger() (*slog.Logger, lines) {
	c := make(lines, 1024)
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})), c
}

// waitLine returns the first line holding every want; only a hang makes it
// wait the whole minute.
func waitLine(t *testing.T, c lines, want ...string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case s := <-c:
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(s, w)
			}
			if ok {
				return s
			}
		case <-timeout:
			t.Fatalf("no log line with %q", want)
		}
	}
}

// TestNiceFailureIsLogged: when the committer's and the indexer's threads
// cannot be niced, Config.Logger hears it (WARN, with the store and the
// error) instead of the failure vanishing. setNice stands in for
// setpriority(2), which never refuses to lower a priority.
func TestNiceFailureIsLogged(t *testing.T) {
	old := setNice
	setNice = func(int) error { return errors.New("operation not permitted") }
	defer func() { setNice = old }()
	c := testConfig(t)
	c.BackgroundNice = 12
	log, out := captureLogger()
	c.Logger = log
	l := openLog(t, c)
	// Close waits for both goroutines, so both lines are written by then.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var all []string
	for len(out) > 0 {
		all = append(all, <-out)
	}
	for _, who := range []string{"committer", "indexer"} {
		found := false
		for _, s := range all {
			found = found || strings.Contains(s, "level=WARN") && strings.Contains(s, "cannot lower the "+who+"'s thread priority") &&
				strings.Contains(s, "store=predlog") && strings.Contains(s, "nice=12") && strings.Contains(s, "operation not permitted")
		}
		if !found {
			t.Fatalf("no WARN line for the %s's priority in:\n%s", who, strings.Join(all, ""))
		}
	}
}

// TestRetentionFailureIsLogged makes the background retention pass fail for
// real (the WAL's fsync fails, so the log turns unhealthy and no pass can
// delete anything): each failed pass is logged at ERROR, and Pebble's
// fatal commit error before it too, with the store and its directory.
func TestRetentionFailureIsLogged(t *testing.T) {
	c, gate := gatedConfig(t)
	c.PruneInterval = 10 * time.Millisecond
	log, out := captureLogger()
	c.Logger = log
	l := openLog(t, c)
	g := newDemoGen(3)
	gate.fail.Store(true)
	if err := l.AppendDurable(g.next()); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("durable append over a failing fsync = %v, want ErrUnhealthy", err)
	}
	waitLine(t, out, "level=ERROR", "pebble: fatal: ", "store=predlog", "dir="+c.Dir)
	waitLine(t, out, "level=ERROR", "predlog: retention pass on "+c.Dir+" failed", "store=predlog")
	if s := l.Stats(); s.PruneErrors == 0 {
		t.Fatalf("PruneErrors = 0 after a logged failed pass: %+v", s)
	}
}
