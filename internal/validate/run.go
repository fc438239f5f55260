package validate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors of Run. A Report that did not pass is not an error: these
// say the gate itself could not give a verdict.
var (
	// ErrUnavailable: the validator could not run (its binary or ONNX
	// Runtime is missing, it refused its arguments): retry after fixing the
	// node, the model is not at fault (HTTP 503).
	ErrUnavailable = errors.New("validate: the validator is unavailable")
)

// Output bounds on what Run keeps of the child.
const (
	maxReport = 8 << 20  // stdout: one JSON report
	maxStderr = 16 << 10 // the head of stderr, where crash dumps start
)

// Run runs the whole gate on onnx in a child process, `opts.Binary validate
// --stdin`, piping the model on its stdin and reading its Report from its
// stdout. The child limits its own address space to opts.MaxMemory before
// loading ONNX Runtime and is killed after opts.Timeout.
//
// Outcomes:
//   - the child ran: its Report, passed or not;
//   - the child timed out, crashed (a signal, a Go runtime fatal error such
//     as a segfault inside ONNX Runtime, out of memory) or exited without a
//     report: a Report with Passed false and a Reason naming what happened
//     ("the validator crashed: signal SIGSEGV: segmentation violation",
//     "validation timed out after 30s");
//   - the gate could not run: an error — invalid Options (a *GoldenError for
//     malformed golden pairs), ErrUnavailable, or ctx's error when ctx ended
//     before the child did.
//
// Run is safe for concurrent use; each call starts one child, so callers
// should bound how many run at once.
func Run(ctx context.Context, onnx []byte, opts Options) (*Report, error) {
	start := time.Now()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(onnx)
	digest := hex.EncodeToString(sum[:])
	failed := func(detail string) *Report {
		r := &Report{Digest: digest, Size: int64(len(onnx))}
		r.fail(CheckProcess, detail)
		r.finish()
		r.Timings.Total = time.Since(start)
		return r
	}
	// The size check needs no child: do not pipe a huge file only to refuse it.
	if int64(len(onnx)) > opts.Limits.MaxModelBytes || len(onnx) == 0 {
		r := Static(onnx, opts.Limits)
		r.Timings.Total = time.Since(start)
		return r, nil
	}

	args := childArgs(&opts)
	if len(opts.Golden) > 0 {
		path, err := writeGolden(opts.Golden)
		if err != nil {
			return nil, err
		}
		defer os.Remove(path)
		args = append(args, "--golden", path)
	}

	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, opts.Binary, args...)
	cmd.Stdin = bytes.NewReader(onnx)
	stdout := &capped{max: maxReport}
	stderr := &capped{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 2 * time.Second // after a kill, do not wait on pipes a grandchild may hold
	err := cmd.Run()

	if ctx.Err() != nil {
		return nil, fmt.Errorf("validate: cancelled before the validator finished: %w", ctx.Err())
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return failed(fmt.Sprintf("validation timed out after %s: the validator was killed (a model that hangs or is too slow to load)", opts.Timeout)), nil
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return nil, fmt.Errorf("%w: cannot run %s validate: %v", ErrUnavailable, opts.Binary, err)
	}
	if crash := crashReason(exitErr, stderr.String(), opts.MaxMemory); crash != "" {
		return failed(crash), nil
	}
	var r Report
	if derr := json.Unmarshal(stdout.Bytes(), &r); derr != nil || len(r.Checks) == 0 {
		code := 0
		if exitErr != nil {
			code = exitErr.ExitCode()
		}
		return nil, fmt.Errorf("%w: %s validate exited with status %d and no report: %s", ErrUnavailable, opts.Binary, code, firstLines(stderr.String(), 3))
	}
	if r.Digest != digest {
		return failed(fmt.Sprintf("the validator checked bytes with digest %s, not the %s it was given", r.Digest, digest)), nil
	}
	if r.Passed != (exitErr == nil) {
		r.fail(CheckProcess, fmt.Sprintf("the validator's exit status (%v) contradicts its report", err))
		r.finish()
	}
	r.Timings.Total = time.Since(start)
	return &r, nil
}

// childArgs are the flags that pass opts to `modelgate validate`.
func childArgs(o *Options) []string {
	mem := o.MaxMemory
	if mem < 0 {
		mem = 0
	}
	return []string{"validate", "--stdin", "--json",
		"--max-memory", strconv.FormatInt(mem, 10),
		"--ort-lib", o.ORTLib,
		"--max-model-bytes", strconv.FormatInt(o.Limits.MaxModelBytes, 10),
		"--max-tensor-bytes", strconv.FormatInt(o.Limits.MaxTensorBytes, 10),
		"--max-total-bytes", strconv.FormatInt(o.Limits.MaxTotalBytes, 10),
		"--max-depth", strconv.Itoa(o.Limits.MaxDepth),
		"--tolerance", strconv.FormatFloat(o.Tolerance, 'g', -1, 64),
		"--latency-budget", o.LatencyBudget.String(),
		"--latency-runs", strconv.Itoa(o.LatencyRuns),
		"--intra-op-threads", strconv.Itoa(o.IntraOpThreads),
	}
}

// childEnv is this process's environment with glibc's malloc arenas capped
// at 2: each arena reserves 64 MiB of address space, and under RLIMIT_AS
// those reservations, not the model, would decide what fits.
func childEnv() []string {
	env := os.Environ()
	for _, kv := range env {
		if strings.HasPrefix(kv, "MALLOC_ARENA_MAX=") {
			return env
		}
	}
	return append(env, "MALLOC_ARENA_MAX=2")
}

func writeGolden(pairs []GoldenPair) (string, error) {
	f, err := os.CreateTemp("", "modelgate-golden-*.json")
	if err != nil {
		return "", fmt.Errorf("validate: cannot write golden pairs for the validator: %w", err)
	}
	err = json.NewEncoder(f).Encode(pairs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("validate: cannot write golden pairs for the validator: %w", err)
	}
	return f.Name(), nil
}

// crashReason says how the child crashed, or "" if it exited on its own
// (status 0 or 1 with a report). The Go runtime turns a fatal signal in
// ONNX Runtime's C++ code (SIGSEGV, SIGBUS, an abort from an uncaught
// exception) into a dump on stderr and exit status 2, so stderr is read as
// well as the wait status.
func crashReason(exitErr *exec.ExitError, stderr string, maxMemory int64) string {
	if exitErr == nil {
		return ""
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		reason := "the validator crashed: " + exitErr.String()
		if ws.Signal() == syscall.SIGKILL {
			reason += " (killed from outside; the kernel's OOM killer does this when memory runs out)"
		}
		return reason
	}
	if exitErr.ExitCode() == 1 {
		return "" // the model failed; the report says why
	}
	var lines []string
	oom := false
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() && len(lines) < 2 {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "fatal error:"), strings.HasPrefix(l, "panic:"),
			strings.HasPrefix(l, "[signal "), strings.HasPrefix(l, "terminate called"),
			isSignalLine(l):
			l = strings.TrimSuffix(strings.TrimPrefix(l, "["), "]")
			if isSignalLine(l) {
				l = "signal " + l
			}
			lines = append(lines, l)
			if strings.Contains(l, "out of memory") || strings.Contains(l, "bad_alloc") {
				oom = true
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if oom && maxMemory > 0 {
		return fmt.Sprintf("the validator ran out of memory (limit %s): %s", sizeString(maxMemory), strings.Join(lines, ": "))
	}
	return "the validator crashed: " + strings.Join(lines, ": ")
}

// isSignalLine matches the Go runtime's "SIGSEGV: segmentation violation"
// header of a fatal-signal dump.
func isSignalLine(l string) bool {
	name, _, ok := strings.Cut(l, ": ")
	if !ok || !strings.HasPrefix(name, "SIG") || len(name) > 10 {
		return false
	}
	for _, c := range name[3:] {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// capped keeps the first max bytes written to it and drops the rest, so a
// runaway child cannot grow the parent's memory.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
