package bench

import (
	"context"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// loader sends the requests of every phase of a run.
type loader struct {
	cfg    *Config
	client *fasthttp.HostClient
	uri    string
	auth   string
	clean  *ring
	drift  *ring
	cur    atomic.Pointer[ring]
	seq    atomic.Uint64
	labels *labeler // nil when labels are off
	// labelCut: a request gets a label when its hashed sequence number,
	// in [0, 2^53), is below it.
	labelCut uint64
}

// newLoader prepares the client and the body rings.
func newLoader(cfg *Config, nonce uint32) (*loader, error) {
	u, err := url.Parse(cfg.Target)
	if err != nil {
		return nil, err
	}
	conns := 1
	for _, p := range cfg.Scenario.Phases {
		conns = max(conns, p.concurrency())
	}
	l := &loader{
		cfg: cfg,
		client: &fasthttp.HostClient{
			Addr:                      hostPort(u),
			IsTLS:                     u.Scheme == "https",
			Name:                      "modelgate-bench",
			MaxConns:                  conns,
			MaxIdemponentCallAttempts: 1,
			ReadTimeout:               time.Duration(cfg.Timeout),
			WriteTimeout:              time.Duration(cfg.Timeout),
			MaxConnWaitTimeout:        time.Duration(cfg.Timeout),
			ReadBufferSize:            16 << 10,
		},
		uri: strings.TrimRight(cfg.Target, "/") + "/v2/models/" + url.PathEscape(cfg.Model) + "/infer",
	}
	if cfg.ScoreToken != "" {
		l.auth = "Bearer " + cfg.ScoreToken
	}
	prefix := idPrefix(nonce)
	if cfg.BodyFile != "" {
		r, err := readBodyFile(cfg.BodyFile, prefix)
		if err != nil {
			return nil, err
		}
		l.clean, l.drift = &r, &r
	} else {
		c := generateRing(cfg.Ring, cfg.Rows, cfg.Accounts, cfg.Seed, noDrift, prefix)
		d := generateRing(cfg.Ring, cfg.Rows, cfg.Accounts, cfg.Seed, cfg.Drift, prefix)
		l.clean, l.drift = &c, &d
	}
	l.cur.Store(l.clean)
	if cfg.LabelFraction > 0 {
		l.labels = newLabeler(cfg, prefix)
		l.labelCut = uint64(cfg.LabelFraction * (1 << 53))
	}
	return l, nil
}

// hostPort is u's host with the scheme's default port when it has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return u.Host + ":443"
	}
	return u.Host + ":80"
}

// setDrift switches the bodies sent from now on.
func (l *loader) setDrift(on bool) {
	if on {
		l.cur.Store(l.drift)
	} else {
		l.cur.Store(l.clean)
	}
}

// schedule hands out the intended send times of an open-loop phase, as
// offsets from the phase start, uniform or Poisson.
type schedule struct {
	mu      sync.Mutex
	next    float64 // ns
	gap     float64 // mean ns between sends
	limit   float64 // phase length, ns
	poisson bool
	rng     *rand.Rand
	n       int64
}

func newSchedule(rate float64, d time.Duration, poisson bool, seed uint64) *schedule {
	return &schedule{
		gap:     float64(time.Second) / rate,
		limit:   float64(d),
		poisson: poisson,
		rng:     rand.New(rand.NewPCG(seed, 0x62656e6368)),
	}
}

// claim returns the next intended send time, or false when the phase is
// over.
func (s *schedule) claim() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.next
	if t >= s.limit {
		return 0, false
	}
	if s.poisson {
		s.next += s.rng.ExpFloat64() * s.gap
	} else {
		s.next += s.gap
	}
	s.n++
	return time.Duration(t), true
}

// runPhase runs one phase to its end (or ctx's) and returns what it
// measured, the number of requests sent and the time it took.
func (l *loader) runPhase(ctx context.Context, p Phase, col *collector) (*phaseStats, int64, time.Duration) {
	conc := p.concurrency()
	shards := make([]*shard, min(conc, 2*runtime.GOMAXPROCS(0)))
	for i := range shards {
		shards[i] = newShard()
	}
	col.set(shards)
	if p.Drift {
		l.setDrift(true)
	} else {
		l.setDrift(false)
	}
	dur := time.Duration(p.Duration)
	start := time.Now()
	end := start.Add(dur)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var sched *schedule
	if p.open() {
		sched = newSchedule(p.Rate, dur, p.Poisson, uint64(l.cfg.Seed))
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := range conc {
		sh := shards[i%len(shards)]
		wg.Go(func() {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(l.uri)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			if l.auth != "" {
				req.Header.Set("Authorization", l.auth)
			}
			if sched == nil {
				for ctx.Err() == nil {
					l.do(req, resp, time.Now(), false, sh)
					sent.Add(1)
				}
				return
			}
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				off, ok := sched.claim()
				if !ok {
					return
				}
				intended := start.Add(off)
				waited := false
				if wait := time.Until(intended); wait > 0 {
					waited = true
					timer.Reset(wait)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				l.do(req, resp, intended, waited, sh)
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	col.set(nil)
	return merge(shards), sent.Load(), elapsed
}

// do sends one request whose intended send time was intended and records
// it in sh.
//
// The latency counts from the intended send time when the worker was
// behind (it claimed the slot after it was due: every worker was busy, so
// the server's slowness delayed the send — coordinated omission
// corrected). When the worker was idle and waited for the slot (waited),
// it counts from the actual send: the timer's overshoot (about 1 ms on
// Linux for short waits) is the harness's error, not the server's, and is
// reported as lateness when above the threshold instead.
func (l *loader) do(req *fasthttp.Request, resp *fasthttp.Response, intended time.Time, waited bool, sh *shard) {
	seq := l.seq.Add(1)
	r := l.cur.Load()
	bd := &r.bodies[seq%uint64(len(r.bodies))]
	req.SetBody(bd.b)
	if bd.idAt >= 0 {
		putID(req.Body(), bd.idAt, seq)
	}
	sent := time.Now()
	err := l.client.DoDeadline(req, resp, sent.Add(time.Duration(l.cfg.Timeout)))
	done := time.Now()
	var status int
	var version []byte
	if err == nil {
		status = resp.StatusCode()
		version = parseVersion(resp.Body())
	}
	from := intended
	if waited {
		from = sent
	}
	sh.result(done.Sub(from), status, version, err, sent.Sub(intended), time.Duration(l.cfg.LateThreshold))
	if l.labels != nil && err == nil && status/100 == 2 && bd.idAt >= 0 &&
		(seq*0x9E3779B97F4A7C15)>>11 < l.labelCut {
		l.labels.add(seq, bd.label, done)
	}
}
