package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/registry"
)

// Edge store-and-forward, the site's side.
//
// An edge site (a non-voter) logs every prediction it serves in its own
// log, cut off or not. Its forwarder walks that log in commit order per
// model, picks the served rows the model's edge policy selects
// (registry.EdgePolicy) and posts them in batches to the center (the
// leader's POST /api/v1/edge/rows), paced under the policy's bandwidth
// cap. The log is the queue: the forwarder keeps one cursor per model in
// a file under its state dir and moves it past a batch only once the
// center has acknowledged it (written durably there). Selection depends
// only on the row, the policy and the version's reference profile, so
// after a restart the same rows are selected again; the center writes a
// request id once. Together: none lost, none twice. A link that is down
// fails the post, and the forwarder retries with exponential backoff; rows
// wait in the log, bounded by the log's own retention (a site cut off for
// longer than --predlog-max-age loses the rows retention prunes, as it
// would lose its own history).

// EdgeConfig configures an edge site's forwarder.
type EdgeConfig struct {
	// Log is the node's prediction log: the rows to forward. Required.
	Log *predlog.Log
	// StateDir holds the forwarding cursors (edge-cursors.json). Required.
	StateDir string
	// Site names the site at the center (default the node's member id).
	Site string
	// Interval is how often the log is looked at for new rows when there
	// was nothing to send (default 1 s).
	Interval time.Duration
	// BatchRows bounds the rows of one post (default 500); a post also
	// stays under one second of the bandwidth cap (at least 16 KiB).
	BatchRows int
	// MinBackoff and MaxBackoff bound the wait between failed posts
	// (defaults 500 ms and 30 s), doubling from one to the other.
	MinBackoff, MaxBackoff time.Duration

	// center, when set, replaces the leader as the posts' target (tests
	// route it through a link they can cut).
	center func() (id, admin string)
}

// scanRows bounds the rows read from the log in one pass over a model.
const scanRows = 10000

// edgeCursorFile is the forwarder's state under StateDir.
const edgeCursorFile = "edge-cursors.json"

// edgeForwarder is the running store-and-forward loop of a site.
type edgeForwarder struct {
	n       *Node
	cfg     EdgeConfig
	cursors map[string]predlog.Cursor
	pace    pacer
	// center returns the id and admin address posts go to: the leader's
	// (tests point it elsewhere).
	center   func() (id, admin string)
	profiles map[string]*drift.Profile // by "model\x00version"; nil: none
}

// StartEdge starts forwarding this node's selected rows to the center
// (after Start; an edge site's serve does it). It reads the cursors a
// previous run left, so a restarted site resumes where the center's
// acknowledgements left it.
func (n *Node) StartEdge(cfg EdgeConfig) error {
	if cfg.Log == nil || cfg.StateDir == "" {
		return errors.New("node: edge forwarding needs the prediction log and a state dir")
	}
	if cfg.Site == "" {
		if l, ok := n.cfg.Control.(interface{ NodeID() string }); ok {
			cfg.Site = l.NodeID()
		} else {
			cfg.Site = n.cfg.Gateway.Node
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 500
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	e := &edgeForwarder{n: n, cfg: cfg, cursors: map[string]predlog.Cursor{}, profiles: map[string]*drift.Profile{}, pace: pacer{now: time.Now}}
	if err := e.load(); err != nil {
		return err
	}
	e.center = func() (string, string) {
		if l, ok := n.cfg.Control.(interface{ LeaderAdmin() (string, string) }); ok {
			return l.LeaderAdmin()
		}
		return "", ""
	}
	if cfg.center != nil {
		e.center = cfg.center
	}
	n.goLoop(e.run)
	return nil
}

// edgeState is the cursor file.
type edgeState struct {
	V       int                       `json:"v"`
	Cursors map[string]predlog.Cursor `json:"cursors"`
}

func (e *edgeForwarder) load() error {
	b, err := os.ReadFile(filepath.Join(e.cfg.StateDir, edgeCursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: cannot read the edge forwarding cursors: %w", err)
	}
	var st edgeState
	if err := json.Unmarshal(b, &st); err != nil || st.V != 1 {
		return fmt.Errorf("node: %s is not an edge cursor file of version 1 (%v): move it away to forward the whole log again (the center drops what it has)",
			filepath.Join(e.cfg.StateDir, edgeCursorFile), err)
	}
	for m, c := range st.Cursors {
		e.cursors[m] = c
	}
	return nil
}

// save writes the cursors atomically and durably: renamed into place
// after an fsync, the directory synced after the rename.
func (e *edgeForwarder) save() error {
	b, err := json.Marshal(edgeState{V: 1, Cursors: e.cursors})
	if err != nil {
		return err
	}
	path := filepath.Join(e.cfg.StateDir, edgeCursorFile)
	f, err := os.CreateTemp(e.cfg.StateDir, edgeCursorFile+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot save the edge cursors: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(e.cfg.StateDir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("cannot save the edge cursors to %s: %w", path, err)
	}
	return nil
}

func (e *edgeForwarder) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	backoff := e.cfg.MinBackoff
	for {
		more, err := e.pass(ctx)
		wait := e.cfg.Interval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			e.n.Server.Metrics.EdgeCounter("upload_failures", e.cfg.Site).Inc()
			e.n.log.Warn("edge forwarding: the center did not take the rows; they wait in this site's log and are sent again",
				"site", e.cfg.Site, "retry_in", backoff, "err", err)
			wait = backoff
			backoff = min(2*backoff, e.cfg.MaxBackoff)
		case more:
			backoff = e.cfg.MinBackoff
			continue
		default:
			backoff = e.cfg.MinBackoff
		}
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
	}
}

// pass sends one batch per model that has selected rows past its cursor.
// It reports whether a model may have more to send at once.
func (e *edgeForwarder) pass(ctx context.Context) (more bool, err error) {
	models, err := e.cfg.Log.Models()
	if err != nil {
		return false, fmt.Errorf("cannot list the logged models: %w", err)
	}
	for _, model := range models {
		pol, sel := e.selector(model)
		if pol == nil {
			continue
		}
		m, err := e.sendBatch(ctx, model, pol, sel)
		if err != nil {
			return false, fmt.Errorf("model %s: %w", model, err)
		}
		more = more || m
	}
	return more, nil
}

// errBatchFull stops the log walk when a batch is full.
var errBatchFull = errors.New("batch full")

func (e *edgeForwarder) sendBatch(ctx context.Context, model string, pol *registry.EdgePolicy, sel func(*predlog.Record) bool) (more bool, err error) {
	from := e.cursors[model]
	budget := max(int(min(pol.BytesPerSecond(), 1<<30)), 16<<10)
	var (
		rows    [][]byte
		size    int
		scanned = from
		n       int
	)
	next, err := e.cfg.Log.Export(model, from, false, scanRows, func(r *predlog.Row) error {
		if sel(&r.Record) {
			b, err := json.Marshal(gateway.EdgeRowOf(&r.Record))
			if err != nil {
				return err
			}
			if len(rows) > 0 && (size+len(b) > budget || len(rows) >= e.cfg.BatchRows) {
				return errBatchFull
			}
			rows, size = append(rows, b), size+len(b)
		}
		scanned = r.Cursor
		n++
		return nil
	})
	switch {
	case errors.Is(err, errBatchFull):
		more = true
	case err != nil:
		return false, fmt.Errorf("cannot read this site's log: %w", err)
	default:
		scanned, more = next, n == scanRows
	}
	if scanned == from {
		return false, nil
	}
	if len(rows) > 0 {
		body := append([]byte(`{"site":`), strconv.Quote(e.cfg.Site)...)
		body = append(body, `,"rows":[`...)
		body = append(body, bytes.Join(rows, []byte(","))...)
		body = append(body, "]}"...)
		e.pace.rate = float64(pol.BytesPerSecond())
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(e.pace.delay(len(body))):
		}
		ack, err := e.post(ctx, body)
		if err != nil {
			return false, err
		}
		if ack.Stored+ack.Duplicates != len(rows) {
			return false, fmt.Errorf("the center acknowledged %d of %d rows", ack.Stored+ack.Duplicates, len(rows))
		}
		e.n.Server.Metrics.EdgeCounter("rows_sent", e.cfg.Site).Add(len(rows))
		e.n.Server.Metrics.EdgeCounter("rows_sent_again", e.cfg.Site).Add(ack.Duplicates)
		e.n.Server.Metrics.EdgeCounter("bytes_sent", e.cfg.Site).Add(len(body))
	}
	e.n.Server.Metrics.EdgeCounter("rows_scanned", e.cfg.Site).Add(n)
	// Only now, acknowledged: a crash before this line sends the batch
	// again, and the center counts it as duplicates.
	prev := e.cursors[model]
	e.cursors[model] = scanned
	if err := e.save(); err != nil {
		e.cursors[model] = prev
		return false, err
	}
	return more, nil
}

func (e *edgeForwarder) post(ctx context.Context, body []byte) (gateway.EdgeAck, error) {
	id, admin := e.center()
	if admin == "" {
		return gateway.EdgeAck{}, errors.New("no center known: this site has no leader (cut off from the cluster?)")
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(c, "POST", e.n.peers.URL(admin, "/api/v1/edge/rows"), bytes.NewReader(body))
	if err != nil {
		return gateway.EdgeAck{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.n.peers.Do(req)
	if err != nil {
		return gateway.EdgeAck{}, fmt.Errorf("cannot reach the center %s at %s: %w", id, admin, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return gateway.EdgeAck{}, fmt.Errorf("the center %s's answer broke off: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return gateway.EdgeAck{}, fmt.Errorf("the center %s answered %d: %s", id, resp.StatusCode, bytes.TrimSpace(b))
	}
	var ack gateway.EdgeAck
	if err := json.Unmarshal(b, &ack); err != nil {
		return gateway.EdgeAck{}, fmt.Errorf("the center %s's answer is not an acknowledgement: %w", id, err)
	}
	return ack, nil
}

// selector returns the model's edge policy and its row selection; a nil
// policy when the model sends nothing back.
func (e *edgeForwarder) selector(model string) (*registry.EdgePolicy, func(*predlog.Record) bool) {
	var (
		pol    *registry.EdgePolicy
		output string
	)
	e.n.cfg.Control.View(func(st *registry.State) {
		if p, err := st.Policy(model); err == nil && p.Edge != nil && p.Edge.Selects() {
			x := *p.Edge
			pol = &x
			if p.Evaluation != nil {
				output = p.Evaluation.Output
			}
		}
	})
	if pol == nil {
		return nil, nil
	}
	return pol, func(r *predlog.Record) bool {
		var prof *drift.Profile
		if pol.OutOfProfile {
			prof = e.profile(r.Model, r.Version)
		}
		return edgeSelects(pol, output, prof, r)
	}
}

// profile returns the version's reference profile (nil: none, or
// unreadable), parsed once.
func (e *edgeForwarder) profile(model, version string) *drift.Profile {
	key := model + "\x00" + version
	if p, ok := e.profiles[key]; ok {
		return p
	}
	var raw json.RawMessage
	if num, err := strconv.Atoi(version); err == nil {
		e.n.cfg.Control.View(func(st *registry.State) {
			if v, err := st.Version(model, num); err == nil {
				raw = v.ReferenceProfile
			}
		})
	}
	var p *drift.Profile
	if len(raw) > 0 {
		var err error
		if p, err = drift.ParseProfile(raw); err != nil {
			e.n.log.Warn("edge forwarding: the version's reference profile is unreadable; out_of_profile selects none of its rows",
				"model", model, "version", version, "err", err)
			p = nil
		}
	}
	e.profiles[key] = p
	return p
}

// edgeSelects is the edge policy's rule: a served row is selected when its
// id falls in the sample, a score is within the low-confidence band, or a
// numeric feature is outside the reference profile (prof nil: no such
// rule). output names the score's output ("": the first).
func edgeSelects(pol *registry.EdgePolicy, output string, prof *drift.Profile, r *predlog.Record) bool {
	if !r.Role.Served() {
		return false
	}
	if pol.SampleRate > 0 && sampled(r.RequestID, pol.SampleRate) {
		return true
	}
	if b := pol.LowConfidence; b != nil {
		if t := tensorOf(r.Outputs, output); t != nil {
			rows, width := rowsOf(t)
			for i := 0; i < rows; i++ {
				if v, ok := element(t, i*width); ok && math.Abs(v-b.Threshold) <= b.Margin {
					return true
				}
			}
		}
	}
	if pol.OutOfProfile && prof != nil {
		z := pol.Z()
		for _, f := range prof.Features {
			ref := f.Numeric
			t := tensorOf(r.Inputs, f.Input)
			if ref == nil || t == nil {
				continue
			}
			rows, width := rowsOf(t)
			if f.Index >= width {
				continue
			}
			for i := 0; i < rows; i++ {
				v, ok := element(t, i*width+f.Index)
				if !ok {
					continue
				}
				if math.IsNaN(v) || math.IsInf(v, 0) || (ref.Std > 0 && math.Abs(v-ref.Mean) > z*ref.Std) || (ref.Std == 0 && v != ref.Mean) {
					return true
				}
			}
		}
	}
	return false
}

// sampled reports whether id falls in a rate share of all ids: the same
// answer for the same id on every run.
func sampled(id string, rate float64) bool {
	h := fnv.New64a()
	h.Write([]byte(id))
	// FNV's high bits barely move between ids that differ in their last
	// characters (tx-1, tx-2, …): the splitmix64 finaliser spreads them.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < rate
}

// tensorOf finds a tensor by name ("": the first).
func tensorOf(ts []predlog.Tensor, name string) *predlog.Tensor {
	for i := range ts {
		if name == "" || ts[i].Name == name {
			return &ts[i]
		}
	}
	return nil
}

// rowsOf is a tensor's rows (its first dimension) and elements per row.
func rowsOf(t *predlog.Tensor) (rows, width int) {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	if len(t.Shape) == 0 || t.Shape[0] <= 0 {
		return min(n, 1), max(n, 1)
	}
	return int(t.Shape[0]), n / int(t.Shape[0])
}

// element reads element i of a FP32 or FP64 tensor.
func element(t *predlog.Tensor, i int) (float64, bool) {
	switch t.DataType {
	case "FP32":
		if (i+1)*4 <= len(t.Data) {
			return float64(math.Float32frombits(uint32(t.Data[4*i]) | uint32(t.Data[4*i+1])<<8 | uint32(t.Data[4*i+2])<<16 | uint32(t.Data[4*i+3])<<24)), true
		}
	case "FP64":
		if (i+1)*8 <= len(t.Data) {
			var u uint64
			for k := 7; k >= 0; k-- {
				u = u<<8 | uint64(t.Data[8*i+k])
			}
			return math.Float64frombits(u), true
		}
	}
	return 0, false
}

// pacer spaces posts so that on average they stay under rate bytes per
// second: a post of n bytes waits until the previous ones' share of time
// has passed. Idle time is not saved up beyond one post.
type pacer struct {
	rate float64 // bytes per second
	next time.Time
	now  func() time.Time
}

// delay returns how long a post of n bytes must wait, and books it.
func (p *pacer) delay(n int) time.Duration {
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	return d
}
