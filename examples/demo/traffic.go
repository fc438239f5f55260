package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// The drifted world: most transactions follow the new fraud pattern of
// fraud.ConceptDrift (the relationship the champion learnt no longer
// holds, which only labels reveal), and the rest come from a new merchant
// category (fraud.NewCategory), which moves the inputs and so raises the
// drift alert (2.5% of transactions in a category never seen breach in
// every window). Offline (TestDemoWorldRewardsRetraining), the demo
// model's AUC on this mix is about 0.6 and a model retrained on the calm
// and drifted rows the export holds when the alert fires about 0.75.
const (
	conceptShare     = 19 // of every 20 drifted transactions
	newCategoryShare = 0.5
)

// traffic is the client side of the story: one-row scoring requests at a
// steady rate, and each transaction's label posted LabelDelay later.
// Every request it sends is counted, and every one that fails too.
type traffic struct {
	cfg    *Config
	url    string
	admin  *admin
	client *http.Client

	genMu   sync.Mutex // the generators are not safe for concurrent use
	calm    *fraud.Generator
	concept *fraud.Generator
	newCat  *fraud.Generator
	drifted bool
	n       int // transactions drawn

	sent     atomic.Uint64 // scoring requests sent
	answered atomic.Uint64 // answered 200
	behind   atomic.Uint64 // ticks dropped because every worker was busy
	labelled atomic.Uint64 // labels accepted by the node

	mu       sync.Mutex
	failures map[string]uint64 // failed client requests by what failed
	examples []string          // the first few failures, verbatim
	versions map[string]uint64 // scoring answers by the version that gave them
	pending  []pendingLabel    // labels not yet due, oldest first

	stop    context.CancelFunc
	stopped chan struct{}
}

type pendingLabel struct {
	ID    string `json:"id"`
	Label int    `json:"label"`
	due   time.Time
}

// request is one transaction on its way to a worker.
type request struct {
	id    string
	body  []byte
	label bool
}

func newTraffic(cfg *Config, n *node, a *admin) *traffic {
	return &traffic{
		cfg:   cfg,
		url:   "http://" + n.addr + "/v2/models/" + model + "/infer",
		admin: a,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: cfg.Workers, MaxIdleConnsPerHost: cfg.Workers, IdleConnTimeout: time.Minute}},
		calm:     fraud.NewGenerator(cfg.Seed),
		concept:  fraud.NewGenerator(cfg.Seed+1, fraud.WithDrift(fraud.Drift{Kind: fraud.ConceptDrift})),
		newCat:   fraud.NewGenerator(cfg.Seed+2, fraud.WithDrift(fraud.Drift{Kind: fraud.NewCategory, Share: newCategoryShare})),
		failures: map[string]uint64{},
		versions: map[string]uint64{},
		stopped:  make(chan struct{}),
	}
}

// start sends traffic until stopAndWait.
func (t *traffic) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	queue := make(chan request, t.cfg.Rate) // a second of backlog at most
	var wg sync.WaitGroup
	for range t.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range queue {
				t.score(r)
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(queue)
		t.pace(ctx, queue)
	}()
	go func() {
		defer wg.Done()
		t.postLabels(ctx)
	}()
	go func() { wg.Wait(); close(t.stopped) }()
}

// stopAndWait stops sending and waits for the requests in flight.
func (t *traffic) stopAndWait() {
	if t.stop != nil {
		t.stop()
		<-t.stopped
	}
}

// drift switches the traffic to the drifted world.
func (t *traffic) drift() {
	t.genMu.Lock()
	t.drifted = true
	t.genMu.Unlock()
}

// pace draws transactions at the configured rate in 10 ms ticks: an open
// loop, so a slow node sees the same offered load, not a politer client.
func (t *traffic) pace(ctx context.Context, queue chan<- request) {
	const tick = 10 * time.Millisecond
	tk := time.NewTicker(tick)
	defer tk.Stop()
	start := time.Now()
	var due float64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			want := now.Sub(start).Seconds() * float64(t.cfg.Rate)
			for ; due < want; due++ {
				select {
				case queue <- t.next():
				default:
					t.behind.Add(1)
				}
			}
		}
	}
}

// next draws one transaction as an OIP request of one row.
func (t *traffic) next() request {
	var row [fraud.NumFeatures]float32
	t.genMu.Lock()
	label := t.generator().Next(row[:])
	t.n++
	id := "tx-" + strconv.Itoa(t.n)
	t.genMu.Unlock()
	b := make([]byte, 0, 512)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","inputs":[{"name":"features","datatype":"FP32","shape":[1,`...)
	b = strconv.AppendInt(b, fraud.NumFeatures, 10)
	b = append(b, `],"data":[`...)
	for i, v := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	}
	b = append(b, "]}]}"...)
	return request{id: id, body: b, label: label}
}

// generator returns the generator of the next transaction; genMu held.
func (t *traffic) generator() *fraud.Generator {
	if !t.drifted {
		return t.calm
	}
	if t.n%20 < conceptShare {
		return t.concept
	}
	return t.newCat
}

// score sends one request and books its outcome.
func (t *traffic) score(r request) {
	t.sent.Add(1)
	resp, err := t.client.Post(t.url, "application/json", bytes.NewReader(r.body))
	if err != nil {
		t.fail("scoring: transport", err.Error())
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.fail("scoring: reading the answer", err.Error())
		return
	}
	if resp.StatusCode != http.StatusOK {
		t.fail("scoring: HTTP "+strconv.Itoa(resp.StatusCode), string(b))
		return
	}
	var out struct {
		Version string `json:"model_version"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Version == "" {
		t.fail("scoring: an answer without model_version", string(b))
		return
	}
	t.answered.Add(1)
	l := pendingLabel{ID: r.id, due: time.Now().Add(t.cfg.LabelDelay)}
	if r.label {
		l.Label = 1
	}
	t.mu.Lock()
	t.versions[out.Version]++
	t.pending = append(t.pending, l)
	t.mu.Unlock()
}

// postLabels sends the labels that are due, a batch every 200 ms, as a
// chargeback feed would.
func (t *traffic) postLabels(ctx context.Context) {
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			t.mu.Lock()
			i := sort.Search(len(t.pending), func(i int) bool { return t.pending[i].due.After(now) })
			due := append([]pendingLabel(nil), t.pending[:i]...)
			t.pending = append(t.pending[:0], t.pending[i:]...)
			t.mu.Unlock()
			for len(due) > 0 {
				batch := due[:min(len(due), 5000)]
				due = due[len(batch):]
				body, _ := json.Marshal(batch)
				// Not the run's context: a batch taken off the queue is
				// sent even while the demo stops, so none is half-counted.
				if err := t.admin.postLabels(context.Background(), body); err != nil {
					t.fail("labels", err.Error())
					continue
				}
				t.labelled.Add(uint64(len(batch)))
			}
		}
	}
}

func (t *traffic) fail(what, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures[what]++
	if len(t.examples) < 5 {
		t.examples = append(t.examples, what+": "+truncate(detail, 300))
	}
}

// Counts is what the traffic generator saw.
type Counts struct {
	Sent, Answered, Behind, Labelled uint64
	// Failed counts failed client requests (scoring and labels) by what
	// failed; Examples quotes the first few.
	Failed   map[string]uint64
	Examples []string
	// Versions counts scoring answers by the version that gave them.
	Versions map[string]uint64
}

// FailedTotal is the number of failed client requests.
func (c Counts) FailedTotal() uint64 {
	var n uint64
	for _, v := range c.Failed {
		n += v
	}
	return n
}

func (t *traffic) counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Counts{Sent: t.sent.Load(), Answered: t.answered.Load(), Behind: t.behind.Load(), Labelled: t.labelled.Load(),
		Failed: maps.Clone(t.failures), Examples: append([]string(nil), t.examples...), Versions: maps.Clone(t.versions)}
}

// summary is one line of traffic figures for the narration.
func (c Counts) summary() string {
	vs := make([]string, 0, len(c.Versions))
	for v := range c.Versions {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { a, _ := strconv.Atoi(vs[i]); b, _ := strconv.Atoi(vs[j]); return a < b })
	s := fmt.Sprintf("%d requests, %d answered, %d failed, %d labels posted", c.Sent, c.Answered, c.FailedTotal(), c.Labelled)
	if len(vs) > 0 {
		s += "; answered by"
		for _, v := range vs {
			s += fmt.Sprintf(" v%s %d", v, c.Versions[v])
		}
	}
	if c.Behind > 0 {
		s += fmt.Sprintf("; %d not sent (every connection busy)", c.Behind)
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
