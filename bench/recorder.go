package bench

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Histogram bounds, in microseconds: 1µs to 60s at 3 significant digits.
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histSigFigs) }

// recordUS records d in microseconds, clamped to the histogram's range so
// nothing is silently dropped.
func recordUS(h *hdr.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = min(max(us, histMin), histMax)
	_ = h.RecordValue(us) // cannot fail: clamped
}

// errorKind names a failed request's error for the report: "connect",
// "timeout", "no_free_conns", "closed" or "other".
func errorKind(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return "connect"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "closed"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "connect"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}

// statusKind names an HTTP error status ("http_503").
func statusKind(code int) string { return "http_" + strconv.Itoa(code) }

// shard accumulates one phase's measurements for some workers; several
// shards keep the lock uncontended. The tick fields are the current
// second's, taken and reset by the progress ticker.
type shard struct {
	mu       sync.Mutex
	all      *hdr.Histogram
	versions map[string]*hdr.Histogram
	errs     map[string]int64
	ok       int64 // answered with a 2xx
	answered int64 // answered with any status (recorded in all)
	late     int64
	maxLate  time.Duration

	tick     *hdr.Histogram
	tickN    int64
	tickErrs int64
	tickLate int64
	tickVer  map[string]*int64 // answers per version this tick; pointers so counting does not allocate
}

func newShard() *shard {
	return &shard{
		all:      newHist(),
		versions: map[string]*hdr.Histogram{},
		errs:     map[string]int64{},
		tick:     newHist(),
		tickVer:  map[string]*int64{},
	}
}

// result records one request: its latency (from the intended send time in
// open loop), its HTTP status (0 when err is set), the answering version
// and how late it was sent.
func (s *shard) result(lat time.Duration, status int, version []byte, err error, late, lateThreshold time.Duration) {
	s.mu.Lock()
	s.tickN++
	if late > lateThreshold {
		s.late++
		s.tickLate++
	}
	s.maxLate = max(s.maxLate, late)
	switch {
	case err != nil:
		s.errs[errorKind(err)]++
		s.tickErrs++
	default:
		s.answered++
		recordUS(s.all, lat)
		recordUS(s.tick, lat)
		if status < 200 || status > 299 {
			s.errs[statusKind(status)]++
			s.tickErrs++
			break
		}
		s.ok++
		h := s.versions[string(version)] // no allocation for the lookup
		if h == nil {
			h = newHist()
			s.versions[string(version)] = h
		}
		recordUS(h, lat)
		c := s.tickVer[string(version)]
		if c == nil {
			c = new(int64)
			s.tickVer[string(version)] = c
		}
		*c++
	}
	s.mu.Unlock()
}

// phaseStats is the merged measurements of one phase.
type phaseStats struct {
	all      *hdr.Histogram
	versions map[string]*hdr.Histogram
	errs     map[string]int64
	ok       int64
	answered int64
	late     int64
	maxLate  time.Duration
	sent     int64
}

// merge merges the shards' phase measurements.
func merge(shards []*shard) *phaseStats {
	p := &phaseStats{all: newHist(), versions: map[string]*hdr.Histogram{}, errs: map[string]int64{}}
	for _, s := range shards {
		s.mu.Lock()
		p.all.Merge(s.all)
		for v, h := range s.versions {
			if p.versions[v] == nil {
				p.versions[v] = newHist()
			}
			p.versions[v].Merge(h)
		}
		for k, n := range s.errs {
			p.errs[k] += n
		}
		p.ok += s.ok
		p.answered += s.answered
		p.late += s.late
		p.maxLate = max(p.maxLate, s.maxLate)
		s.mu.Unlock()
	}
	return p
}

// collector holds the shards of the phase running now, for the ticker.
// A phase's shards stay until the next take after the phase ends, so its
// last partial second is not lost.
type collector struct {
	mu      sync.Mutex
	shards  []*shard
	retired []*shard
	tick    *hdr.Histogram
}

func (c *collector) set(shards []*shard) {
	c.mu.Lock()
	c.retired = append(c.retired, c.shards...)
	c.shards = shards
	c.mu.Unlock()
}

// take merges and resets the shards' tick measurements: the last
// interval's count, errors, late sends, p50 and p99 (µs) and answers per
// version.
func (c *collector) take() (n, errs, late int64, p50, p99 int64, versions map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tick == nil {
		c.tick = newHist()
	}
	c.tick.Reset()
	versions = map[string]int64{}
	for _, s := range append(c.retired, c.shards...) {
		s.mu.Lock()
		c.tick.Merge(s.tick)
		s.tick.Reset()
		n += s.tickN
		errs += s.tickErrs
		late += s.tickLate
		for v, k := range s.tickVer {
			versions[v] += *k
			*k = 0
		}
		s.tickN, s.tickErrs, s.tickLate = 0, 0, 0
		s.mu.Unlock()
	}
	c.retired = c.retired[:0]
	return n, errs, late, c.tick.ValueAtQuantile(50), c.tick.ValueAtQuantile(99), versions
}
