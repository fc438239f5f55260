package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ActionResult is a fired scenario action, as the report shows it.
type ActionResult struct {
	// At is when it was due and Fired when it ran, in seconds from the
	// start of the run; Took is how long it took, in milliseconds.
	At     float64 `json:"at_s"`
	Fired  float64 `json:"fired_s"`
	Took   float64 `json:"took_ms"`
	Do     string  `json:"do"`
	Detail string  `json:"detail"`
	Error  string  `json:"error,omitempty"`
}

// nodeProc is a node process the harness started.
type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// actor fires a scenario's actions and owns the node processes it starts.
type actor struct {
	cfg    *Config
	http   *http.Client
	drift  func(on bool)
	output io.Writer // node processes' stdout and stderr

	mu          sync.Mutex
	lastVersion int
	nodes       map[string]*nodeProc
	results     []ActionResult
}

func newActor(cfg *Config, drift func(bool), output io.Writer) *actor {
	if output == nil {
		output = io.Discard
	}
	return &actor{cfg: cfg, http: &http.Client{Timeout: time.Minute}, drift: drift, output: output, nodes: map[string]*nodeProc{}}
}

// startNodes launches the nodes marked Start and waits their Wait.
func (a *actor) startNodes() error {
	names := make([]string, 0, len(a.cfg.Scenario.Nodes))
	for n, nd := range a.cfg.Scenario.Nodes {
		if nd.Start {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if err := a.startNode(n); err != nil {
			return err
		}
	}
	return nil
}

// run fires the actions at their times (from start) until ctx ends.
func (a *actor) run(ctx context.Context, start time.Time) {
	acts := append([]Action(nil), a.cfg.Scenario.Actions...)
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].At < acts[j].At })
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, act := range acts {
		if wait := time.Until(start.Add(time.Duration(act.At))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		fired := time.Now()
		detail, err := a.fire(ctx, act)
		r := ActionResult{
			At:     time.Duration(act.At).Seconds(),
			Fired:  fired.Sub(start).Seconds(),
			Took:   float64(time.Since(fired).Microseconds()) / 1000,
			Do:     act.Do,
			Detail: detail,
		}
		if err != nil {
			r.Error = err.Error()
		}
		a.mu.Lock()
		a.results = append(a.results, r)
		a.mu.Unlock()
	}
}

// fired returns the results so far.
func (a *actor) fired() []ActionResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ActionResult(nil), a.results...)
}

// fire runs one action and describes it.
func (a *actor) fire(ctx context.Context, act Action) (string, error) {
	model := act.Model
	if model == "" {
		model = a.cfg.Model
	}
	base := "/api/v1/models/" + url.PathEscape(model)
	version := func() (int, error) {
		if act.Version != 0 {
			return act.Version, nil
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.lastVersion == 0 {
			return 0, fmt.Errorf("%w: %s: no version given and none registered yet", ErrAction, act.Do)
		}
		return a.lastVersion, nil
	}
	reason := act.Reason
	if reason == "" {
		reason = "bench scenario " + a.cfg.Scenario.Name
	}
	switch act.Do {
	case ActionRegister:
		v, err := a.register(ctx, base+"/versions", act.File, act.Metadata)
		return fmt.Sprintf("register %s from %s → v%d", model, filepath.Base(act.File), v), err
	case ActionPromote:
		v, err := version()
		if err != nil {
			return "promote", err
		}
		return fmt.Sprintf("promote %s v%d", model, v), a.post(ctx, base+"/promote", map[string]any{"version": v, "reason": reason})
	case ActionRollback:
		return "rollback " + model, a.post(ctx, base+"/rollback", map[string]any{"reason": reason})
	case ActionCanary, ActionStage:
		v, err := version()
		if err != nil {
			return act.Do, err
		}
		in := map[string]any{"stage": act.Stage, "reason": reason}
		d := fmt.Sprintf("%s v%d stage %s", model, v, act.Stage)
		if act.Do == ActionCanary {
			in["stage"], in["weight"] = "canary", act.Weight
			d = fmt.Sprintf("canary %s v%d at %g%%", model, v, act.Weight)
		}
		return d, a.post(ctx, base+"/versions/"+strconv.Itoa(v)+"/stage", in)
	case ActionKill:
		return "kill node " + act.Node, a.killNode(act.Node)
	case ActionStart:
		return "start node " + act.Node, a.startNode(act.Node)
	case ActionRestart:
		if err := a.killNode(act.Node); err != nil {
			return "restart node " + act.Node, err
		}
		return "restart node " + act.Node, a.startNode(act.Node)
	case ActionDriftOn, ActionDriftOff:
		a.drift(act.Do == ActionDriftOn)
		return act.Do, nil
	}
	return act.Do, fmt.Errorf("%w: unknown action %q", ErrAction, act.Do)
}

// post sends a JSON admin request.
func (a *actor) post(ctx context.Context, path string, in any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	_, err = a.send(ctx, path, bytes.NewReader(b), "application/json")
	return err
}

// send POSTs to the admin API and returns the answer's body.
func (a *actor) send(ctx context.Context, path string, body io.Reader, contentType string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.cfg.Admin, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAction, err)
	}
	req.Header.Set("Content-Type", contentType)
	if a.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot reach the admin API: %v", ErrAction, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrAction, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("%w: %s: HTTP %d: %s", ErrAction, path, resp.StatusCode, bytes.TrimSpace(out))
	}
	return out, nil
}

// register uploads a model file (multipart "model", optional "metadata")
// and remembers the version the API created.
func (a *actor) register(ctx context.Context, path, file, metadata string) (int, error) {
	model, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("%w: register: %v", ErrAction, err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if metadata != "" {
		meta, err := os.ReadFile(metadata)
		if err != nil {
			return 0, fmt.Errorf("%w: register: %v", ErrAction, err)
		}
		if err := mw.WriteField("metadata", string(meta)); err != nil {
			return 0, err
		}
	}
	part, err := mw.CreateFormFile("model", filepath.Base(file))
	if err != nil {
		return 0, err
	}
	part.Write(model)
	if err := mw.Close(); err != nil {
		return 0, err
	}
	out, err := a.send(ctx, path, &buf, mw.FormDataContentType())
	if err != nil {
		return 0, err
	}
	var r struct {
		Version int `json:"version"`
	}
	if json.Unmarshal(out, &r) != nil || r.Version == 0 {
		return 0, fmt.Errorf("%w: register: the answer names no version: %s", ErrAction, bytes.TrimSpace(out))
	}
	a.mu.Lock()
	a.lastVersion = r.Version
	a.mu.Unlock()
	return r.Version, nil
}

// startNode starts a node process (an error if it already runs) and waits
// its Wait.
func (a *actor) startNode(name string) error {
	nd := a.cfg.Scenario.Nodes[name]
	a.mu.Lock()
	if p := a.nodes[name]; p != nil {
		select {
		case <-p.done:
		default:
			a.mu.Unlock()
			return fmt.Errorf("%w: node %s is already running (pid %d)", ErrAction, name, p.cmd.Process.Pid)
		}
	}
	cmd := exec.Command(nd.Cmd[0], nd.Cmd[1:]...)
	cmd.Dir = nd.Dir
	cmd.Stdout, cmd.Stderr = a.output, a.output
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		return fmt.Errorf("%w: cannot start node %s: %v", ErrAction, name, err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	a.nodes[name] = p
	a.mu.Unlock()
	time.Sleep(time.Duration(nd.Wait))
	return nil
}

// killNode SIGKILLs a node process the harness started and waits for it.
func (a *actor) killNode(name string) error {
	a.mu.Lock()
	p := a.nodes[name]
	a.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: node %s was not started by the harness", ErrAction, name)
	}
	select {
	case <-p.done:
		return nil // already gone
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
	return nil
}

// stopNodes stops every node the harness started: SIGTERM, then SIGKILL
// after grace.
func (a *actor) stopNodes(grace time.Duration) {
	a.mu.Lock()
	procs := make([]*nodeProc, 0, len(a.nodes))
	for _, p := range a.nodes {
		procs = append(procs, p)
	}
	a.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}
