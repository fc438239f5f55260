package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one child process of the demo (the node or the retrainer), its
// output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
}

func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create the %s log: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, logFile: f, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	// A demo (or test) killed outright must not leave a node serving on
	// a shared machine.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start the %s (%s): %w", name, bin, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to drain (SIGTERM) and kills it if it has not
// ended within grace.
func (p *proc) stop(grace time.Duration) {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.logFile.Close()
}

// tail returns the last lines of the process's log containing word ("" for
// any), for an error message.
func (p *proc) tail(word string, n int) string {
	b, _ := os.ReadFile(p.logPath)
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if word == "" || strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// node is the modelgate node under demonstration.
type node struct {
	*proc
	addr, admin string
	token       string
}

// startNode runs `modelgate serve` with no model (the demo registers the
// champion through the admin API, with its reference profile) on free
// loopback ports and waits until it answers ready. A node that lost one
// of its ports to another process before binding it is started again.
func startNode(ctx context.Context, cfg *Config, dir, secret string) (*node, error) {
	dataDir := filepath.Join(dir, "data")
	for attempt := 1; ; attempt++ {
		var addrs [3]string
		for i := range addrs {
			a, err := freeAddr()
			if err != nil {
				return nil, err
			}
			addrs[i] = a
		}
		p, err := startProc("node", filepath.Join(dir, "node.log"), nil, cfg.Modelgate, "serve",
			"--listen", addrs[0], "--admin-listen", addrs[1], "--raft-listen", addrs[2],
			"--data-dir", dataDir, "--ort-lib", cfg.ORTLib,
			"--drift-window", cfg.DriftWindow.String(), "--secret", secretRef+"="+secret)
		if err != nil {
			return nil, err
		}
		n := &node{proc: p, addr: addrs[0], admin: addrs[1]}
		err = waitHTTP(ctx, p, "http://"+n.addr+"/v2/health/ready", time.Minute)
		if err != nil {
			p.stop(5 * time.Second)
			if attempt < 5 && strings.Contains(p.tail("address already in use", 1), "address already in use") {
				continue
			}
			return nil, fmt.Errorf("the node did not become ready: %w\n%s", err, p.tail("", 20))
		}
		b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
		if err != nil {
			p.stop(5 * time.Second)
			return nil, fmt.Errorf("cannot read the node's admin token: %w", err)
		}
		n.token = strings.TrimSpace(string(b))
		return n, nil
	}
}

// retrainer is the example retraining job, as a process.
type retrainer struct {
	*proc
	url string
}

func startRetrainer(ctx context.Context, cfg *Config, dir, secret string, n *node) (*retrainer, error) {
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args := []string{"--admin", "http://" + n.admin, "--model", model, "--listen", addr,
			// The job refuses fewer rows than this: with the demo's rate
			// the export holds several thousand by the time drift fires.
			"--min-rows", "1000", "--backoff", "200ms"}
		if cfg.Commit != "" {
			args = append(args, "--commit", cfg.Commit)
		}
		p, err := startProc("retrainer", filepath.Join(dir, "retrainer.log"),
			[]string{"RETRAINER_SECRET=" + secret, "MODELGATE_TOKEN=" + n.token}, cfg.Retrainer, args...)
		if err != nil {
			return nil, err
		}
		r := &retrainer{proc: p, url: "http://" + addr}
		if err := waitHTTP(ctx, p, r.url+"/status", 30*time.Second); err != nil {
			p.stop(5 * time.Second)
			if attempt < 5 && strings.Contains(p.tail("address already in use", 1), "address already in use") {
				continue
			}
			return nil, fmt.Errorf("the retrainer did not start: %w\n%s", err, p.tail("", 20))
		}
		return r, nil
	}
}

// waitHTTP polls url until it answers 200, the process exits, or guard
// passes (a hang: starting takes a second or two).
func waitHTTP(ctx context.Context, p *proc, url string, guard time.Duration) error {
	deadline := time.Now().Add(guard)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		if p.exited() {
			return fmt.Errorf("the %s exited (%v)", p.name, p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s (last: %v)", url, guard, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// newSecret returns a random webhook signing secret for one run.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", errors.New("cannot draw a webhook secret: " + err.Error())
	}
	return hex.EncodeToString(b), nil
}
