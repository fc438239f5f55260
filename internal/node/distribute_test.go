package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

// Serving modes of a faultyStore.
const (
	serveGood    int32 = iota
	serveCorrupt       // one byte flipped in the middle: the digest does not match
	serveCut           // the stream fails half way: the connection is cut
)

// faultyStore is a member's artifact store that serves other nodes' fetches
// (GET /api/v1/artifacts/{digest}) corrupted or cut on demand; its own
// loads (Get) read the real bytes. served receives the mode of every
// faulty transfer.
type faultyStore struct {
	*artifact.Store
	mode   atomic.Int32
	served chan int32
}

func newFaultyStore() *faultyStore { return &faultyStore{served: make(chan int32, 64)} }

func (f *faultyStore) Open(digest string) (io.ReadCloser, error) {
	rc, err := f.Store.Open(digest)
	if err != nil {
		return nil, err
	}
	mode := f.mode.Load()
	if mode == serveGood {
		return rc, nil
	}
	info, err := f.Store.Stat(digest)
	if err != nil {
		rc.Close()
		return nil, err
	}
	select {
	case f.served <- mode:
	default:
	}
	return &faultyReader{rc: rc, mode: mode, half: info.Size / 2}, nil
}

type faultyReader struct {
	rc   io.ReadCloser
	mode int32
	half int64
	off  int64
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if r.mode == serveCut && r.off >= r.half {
		return 0, errors.New("test: transfer cut")
	}
	if r.mode == serveCut && int64(len(p)) > r.half-r.off {
		p = p[:r.half-r.off]
	}
	n, err := r.rc.Read(p)
	if r.mode == serveCorrupt && r.off <= r.half && r.half < r.off+int64(n) {
		p[r.half-r.off] ^= 0x55
	}
	r.off += int64(n)
	return n, err
}

func (r *faultyReader) Close() error { return r.rc.Close() }

// logBuffer collects a member's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bootCluster starts first as a new cluster and the others joined to it
// through first.
func bootCluster(ctx context.Context, t *testing.T, first *member, rest ...*member) {
	t.Helper()
	first.start(true)
	if err := first.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := first.c.LeaderAdmin(); a == ""; _, a = first.c.LeaderAdmin() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never announced its admin address", first.id)
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, m := range rest {
		m.start(false)
		joinVia(t, first, m)
	}
}

func clusterTest(t *testing.T) (context.Context, func(id string) *member) {
	t.Helper()
	if testing.Short() {
		t.Skip("whole nodes on 127.0.0.1")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx, func(id string) *member {
		return &member{t: t, id: id, dir: t.TempDir(), raft: freeRaftAddr(t), voter: true, applyTO: 5 * time.Second}
	}
}

// scoreVersion scores one row on m and returns the version that answered.
func scoreVersion(m *member) (string, error) {
	resp, err := http.Post("http://"+m.n.Addr()+"/v2/models/fraud/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		ModelVersion string `json:"model_version"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		return "", errors.New(m.id + ": " + resp.Status + " " + string(b))
	}
	return out.ModelVersion, nil
}

// TestDistributionLateJoinerRefusesBadTransfers: a version uploaded through
// a follower is fetched by the other node; a node that joins later, while
// one holder serves corrupted bytes and the other cuts the transfer half
// way, refuses both (nothing of them in its store), backs off, fetches
// again once a holder is healthy, validates, reports ready and serves the
// version. Every node then holds identical bytes by digest, serves v1 and
// has the same audit log.
func TestDistributionLateJoinerRefusesBadTransfers(t *testing.T) {
	ctx, mk := clusterTest(t)
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	n1.faulty, n2.faulty, n3.logs = newFaultyStore(), newFaultyStore(), &logBuffer{}
	bootCluster(ctx, t, n1, n2)
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := upload(t, n2, "fraud", onnx, "reg-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload through n2: %d %s", resp.StatusCode, b)
	}
	v := waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2")

	n1.faulty.mode.Store(serveCorrupt)
	n2.faulty.mode.Store(serveCut)
	n3.start(false)
	joinVia(t, n1, n3)
	for _, f := range []*faultyStore{n1.faulty, n2.faulty} {
		select {
		case <-f.served:
		case <-ctx.Done():
			t.Fatalf("n3 never fetched from both holders; its log:\n%s", n3.logs)
		}
	}
	// Both transfers were bad: n3 has refused them (its store is empty)
	// and has not reported ready.
	waitLog(ctx, t, n3.logs, "refused an artifact transfer", "from=n1", "hash to")
	// A cut before the headers are flushed reads as EOF, after them as an
	// unexpected EOF: a short read either way.
	waitLog(ctx, t, n3.logs, "refused an artifact transfer", "from=n2", "EOF")
	if list, err := n3.store.List(); err != nil || len(list) != 0 {
		t.Fatalf("n3's store after two bad transfers: %v %v", list, err)
	}
	n2.faulty.mode.Store(serveGood)
	waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2", "n3")
	settle(ctx, t, n1, n1, n2, n3)

	got, err := n3.store.Get(v.Digest)
	if err != nil || !bytes.Equal(got, onnx) {
		t.Fatalf("n3's copy: %v", err)
	}
	if list, _ := n3.store.List(); len(list) != 1 {
		t.Fatalf("n3's store holds %v, want only v1's artifact", list)
	}
	audit := auditOf(t, n1)
	for _, m := range []*member{n1, n2, n3} {
		if err := m.n.Server.Reconcile(); err != nil {
			t.Fatalf("%s: %v", m.id, err)
		}
		if ver, err := scoreVersion(m); err != nil || ver != "1" {
			t.Fatalf("scoring on %s: version %q %v", m.id, ver, err)
		}
		if a := auditOf(t, m); a != audit {
			t.Fatalf("audit log on %s differs from the leader's:\n%s\nwant\n%s", m.id, a, audit)
		}
	}
	if c := strings.Count(audit, `"action":"ready"`); c != 2 {
		t.Fatalf("%d ready records, want 2 (n2 and n3; n1 ran the gate at registration): %s", c, audit)
	}
}

// waitLog waits until a line of l holds every one of parts.
func waitLog(ctx context.Context, t *testing.T, l *logBuffer, parts ...string) {
	t.Helper()
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no log line with %q:\n%s", parts, l)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
