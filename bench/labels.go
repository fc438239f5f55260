package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// labelBatch is the most labels sent in one POST.
const labelBatch = 1000

// labelItem is a label due to be sent.
type labelItem struct {
	seq   uint64
	label bool
	due   time.Time
}

// labeler sends ground-truth labels for a sample of the answered requests
// to POST {admin}/api/v1/models/{m}/labels, each after a delay, off the
// send path: the load workers only enqueue (and drop, counted, when the
// queue is full).
type labeler struct {
	url    string
	token  string
	delay  time.Duration
	prefix []byte
	ch     chan labelItem
	http   *http.Client

	sent, dropped, failed atomic.Int64
}

func newLabeler(cfg *Config, prefix []byte) *labeler {
	return &labeler{
		url:    strings.TrimRight(cfg.Admin, "/") + "/api/v1/models/" + url.PathEscape(cfg.Model) + "/labels",
		token:  cfg.Token,
		delay:  time.Duration(cfg.LabelDelay),
		prefix: prefix,
		ch:     make(chan labelItem, 1<<16),
		http:   &http.Client{Timeout: 10 * time.Second},
	}
}

// add queues the label of request seq, answered at done.
func (l *labeler) add(seq uint64, label bool, done time.Time) {
	select {
	case l.ch <- labelItem{seq, label, done.Add(l.delay)}:
	default:
		l.dropped.Add(1)
	}
}

// run sends due labels until ctx ends, then sends what is still queued.
func (l *labeler) run(ctx context.Context) {
	var pending []labelItem
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case it := <-l.ch:
			pending = append(pending, it)
		case now := <-tick.C:
			n := 0
			for n < len(pending) && !pending[n].due.After(now) {
				n++
			}
			l.post(pending[:n])
			pending = append(pending[:0], pending[n:]...)
		case <-ctx.Done():
		drain:
			for {
				select {
				case it := <-l.ch:
					pending = append(pending, it)
				default:
					break drain
				}
			}
			l.post(pending)
			return
		}
	}
}

// post sends items in batches; failures are counted, not retried.
func (l *labeler) post(items []labelItem) {
	for len(items) > 0 {
		n := min(len(items), labelBatch)
		var b bytes.Buffer
		b.WriteByte('[')
		id := make([]byte, len(l.prefix)+idDigits)
		copy(id, l.prefix)
		for i, it := range items[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			putID(id, len(l.prefix), it.seq)
			b.WriteString(`{"id":"`)
			b.Write(id)
			if it.label {
				b.WriteString(`","label":true}`)
			} else {
				b.WriteString(`","label":false}`)
			}
		}
		b.WriteByte(']')
		items = items[n:]
		req, err := http.NewRequest(http.MethodPost, l.url, &b)
		if err != nil {
			l.failed.Add(int64(n))
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		if l.token != "" {
			req.Header.Set("Authorization", "Bearer "+l.token)
		}
		resp, err := l.http.Do(req)
		if err != nil {
			l.failed.Add(int64(n))
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			l.failed.Add(int64(n))
			continue
		}
		l.sent.Add(int64(n))
	}
}
