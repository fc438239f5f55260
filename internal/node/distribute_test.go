package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/registry"
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
	// hold, when set, blocks this member's own fetches (PutExpect) until
	// it is closed: the member stays "fetching" as long as a test needs.
	hold chan struct{}
}

func (f *faultyStore) PutExpect(r io.Reader, digest string) (int64, error) {
	if f.hold != nil {
		<-f.hold
	}
	return f.Store.PutExpect(r, digest)
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
// a follower, and a validated candidate, are fetched by the other node; a
// node that joins later, while one holder serves corrupted bytes and the
// other cuts the transfer half way, refuses both (nothing of them in its
// store), backs off, fetches again once a holder is healthy, validates,
// reports both versions ready and serves the champion. Every node then
// holds identical bytes by digest, serves v1 and has the same audit log.
// Restarted with an empty artifact store, n3 fetches both again and serves
// without reporting again.
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
	// A candidate too: validated, not serving, still fetched everywhere.
	cand, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := upload(t, n1, "fraud", cand, "reg-2"); resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"stage":"validated"`) {
		t.Fatalf("upload v2: %d %s", resp.StatusCode, b)
	}
	v2 := waitReadyOn(ctx, t, n1, "fraud", 2, "n1", "n2")

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
	waitReadyOn(ctx, t, n1, "fraud", 2, "n1", "n2", "n3")
	settle(ctx, t, n1, n1, n2, n3)

	for _, want := range []struct {
		digest string
		bytes  []byte
	}{{v.Digest, onnx}, {v2.Digest, cand}} {
		got, err := n3.store.Get(want.digest)
		if err != nil || !bytes.Equal(got, want.bytes) {
			t.Fatalf("n3's copy of %s: %v", want.digest, err)
		}
	}
	if list, _ := n3.store.List(); len(list) != 2 {
		t.Fatalf("n3's store holds %v, want v1's and v2's artifacts only", list)
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
	if c := strings.Count(audit, `"action":"ready"`); c != 4 {
		t.Fatalf("%d ready records, want 4 (n2 and n3 for v1 and v2; n1 ran the gate at registration): %s", c, audit)
	}

	// n3 comes back under the same ID with an empty artifact store (a new
	// disk): it fetches both versions again, with no new report, and serves.
	n3.stop()
	n3.store.Close()
	if err := os.RemoveAll(filepath.Join(n3.dir, "artifacts")); err != nil {
		t.Fatal(err)
	}
	n3.store = nil
	n3.start(false)
	for {
		has1, _ := n3.store.Has(v.Digest)
		has2, _ := n3.store.Has(v2.Digest)
		if ver, err := scoreVersion(n3); err == nil && ver == "1" && has1 && has2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("n3 with a new disk never served v1 again; its log:\n%s", n3.logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	settle(ctx, t, n1, n1, n2, n3)
	if a := auditOf(t, n1); strings.Count(a, `"action":"ready"`) != 4 {
		t.Fatalf("the refetch reported again: %s", a)
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

// TestPromotionGateAndRollingPromotion: three voters and a non-voter. v2
// is uploaded through a follower while n3's fetch is held and the
// non-voter is down: a promotion and a canary move through a follower are
// refused with 409 naming n3 ("fetching from n1"), not the dead non-voter,
// and change nothing. Once n3 reports ready the promotion is allowed, and
// it rolls across the three nodes while a load generator scores against
// all of them: no request fails, every node ends up answering v2, and
// each node's own log shows v2 loaded and warmed before its routing table
// published it.
func TestPromotionGateAndRollingPromotion(t *testing.T) {
	ctx, mk := clusterTest(t)
	n1, n2, n3, edge := mk("n1"), mk("n2"), mk("n3"), mk("edge")
	edge.voter = false
	n3.faulty = newFaultyStore()
	for _, m := range []*member{n1, n2, n3} {
		m.logs = &logBuffer{}
	}
	bootCluster(ctx, t, n1, n2, n3, edge)
	v1, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := upload(t, n2, "fraud", v1, "reg-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload v1: %d %s", resp.StatusCode, b)
	}
	waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2", "n3", "edge")
	edge.stop() // a non-voter that is down: not live, not waited for

	n3.faulty.hold = make(chan struct{})
	if resp, b := upload(t, n3, "fraud", v2, "reg-2"); resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"stage":"validated"`) {
		t.Fatalf("upload v2: %d %s", resp.StatusCode, b)
	}
	waitReadyOn(ctx, t, n1, "fraud", 2, "n1", "n2")
	hdr := map[string]string{"Content-Type": "application/json"}
	for _, try := range []struct{ path, body string }{
		{"/api/v1/models/fraud/promote", `{"version":2}`},
		{"/api/v1/models/fraud/versions/2/stage", `{"stage":"canary","weight":10}`},
	} {
		resp, b := call(t, "POST", n2.admin()+try.path, strings.NewReader(try.body), hdr)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "n3 not ready yet: fetching from n1") ||
			strings.Contains(string(b), "edge") || strings.Contains(string(b), "n2 ") {
			t.Fatalf("%s while n3 fetches: %d %s, want 409 naming n3 only", try.path, resp.StatusCode, b)
		}
		t.Logf("%s while n3 fetches: %d %s", try.path, resp.StatusCode, b)
	}
	n1.c.View(func(st *registry.State) {
		if v, _ := st.Version("fraud", 2); v.Stage != registry.StageValidated {
			t.Fatalf("v2 is %s after refused moves", v.Stage)
		}
	})

	// Load against every node from here to the end.
	var (
		served   atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		firstErr error
		sawV2    = map[string]bool{}
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	voters := []*member{n1, n2, n3}
	for _, m := range voters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				ver, err := scoreVersion(m)
				mu.Lock()
				if err != nil {
					failures.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else if served.Add(1); ver == "2" {
					sawV2[m.id] = true
				}
				mu.Unlock()
			}
		}()
	}
	stopLoad := func() {
		close(done)
		wg.Wait()
	}
	close(n3.faulty.hold)
	ready := waitReadyOn(ctx, t, n1, "fraud", 2, "n1", "n2", "n3")
	resp, b := call(t, "POST", n2.admin()+"/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), hdr)
	if resp.StatusCode != http.StatusOK {
		stopLoad()
		t.Fatalf("promote once n3 is ready: %d %s", resp.StatusCode, b)
	}
	for {
		mu.Lock()
		all := len(sawV2) == 3
		mu.Unlock()
		if all {
			break
		}
		select {
		case <-ctx.Done():
			stopLoad()
			t.Fatalf("not every node answers v2: %v", sawV2)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopLoad()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d scoring requests failed during the rolling promotion; first: %v", n, firstErr)
	}
	t.Logf("rolling promotion under load: %d requests answered, none failed", served.Load())
	for _, m := range voters {
		logs := m.logs.String()
		loaded := strings.Index(logs, `msg="version loaded and warmed on this node" model=fraud version=2`)
		routed := strings.Index(logs, `msg="version loaded" model=fraud version=2 role=champion`)
		if loaded < 0 || routed < 0 || loaded > routed {
			t.Fatalf("%s: v2 loaded at %d, published at %d in its log:\n%s", m.id, loaded, routed, logs)
		}
	}
	// Every voter's ready report precedes the promotion in the audit log.
	audit := auditOf(t, n1)
	promoted := strings.Index(audit, `"action":"promote","model":"fraud","version":2`)
	for _, id := range []string{"n2", "n3"} {
		if r := strings.Index(audit, `"reason":"ready on node `+id+`"`); promoted < 0 || r < 0 || r > promoted {
			t.Fatalf("ready report of %s at %d, promotion at %d: %s", id, r, promoted, audit)
		}
	}
	if !ready.IsReadyOn("n1") || ready.IsReadyOn("edge") {
		t.Fatalf("v2 ready on %v", ready.ReadyOn)
	}
}

// TestPromotionGateFailedGateAndQuorum: n3's own validation gate refuses
// v2's bytes. It reports so (failed_on in the version); a promotion is
// refused with 409 saying "validation failed on node n3" and the gate's
// reason. With the model's distribution policy at "quorum" (n1 and n2 of
// three voters ready) the promotion is allowed: n1 and n2 serve v2, while
// n3, whose gate refused it, keeps serving v1 and says why.
func TestPromotionGateFailedGateAndQuorum(t *testing.T) {
	ctx, mk := clusterTest(t)
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	v1, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	n3.validator = func(ctx context.Context, onnx []byte, golden json.RawMessage, budget float64) (gateway.Validation, error) {
		if bytes.Equal(onnx, v2) {
			return gateway.Validation{Passed: false, Reason: "smoke run: 12 ms over the latency budget of 5 ms on this node"}, nil
		}
		return localValidator(ctx, onnx, golden, budget)
	}
	bootCluster(ctx, t, n1, n2, n3)
	if resp, b := upload(t, n1, "fraud", v1, "reg-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload v1: %d %s", resp.StatusCode, b)
	}
	if resp, b := upload(t, n2, "fraud", v2, "reg-2"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload v2: %d %s", resp.StatusCode, b)
	}
	waitReadyOn(ctx, t, n1, "fraud", 1, "n1", "n2", "n3")
	waitReadyOn(ctx, t, n1, "fraud", 2, "n1", "n2")
	for {
		var why string
		n1.c.View(func(st *registry.State) {
			v, _ := st.Version("fraud", 2)
			why = v.FailedReason("n3")
		})
		if why != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("n3 never reported its gate's verdict on v2")
		case <-time.After(50 * time.Millisecond):
		}
	}
	settle(ctx, t, n1, n1, n2, n3)
	resp, b := call(t, "GET", n3.admin()+"/api/v1/models/fraud/versions/2", nil, nil)
	if !strings.Contains(string(b), `"failed_on":[{"node":"n3"`) || !strings.Contains(string(b), `"holders":["n1","n2"]`) {
		t.Fatalf("v2 on n3: %d %s", resp.StatusCode, b)
	}
	hdr := map[string]string{"Content-Type": "application/json"}
	resp, b = call(t, "POST", n3.admin()+"/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), hdr)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "validation failed on node n3: smoke run: 12 ms over the latency budget") {
		t.Fatalf("promote with n3's gate refusing: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "PUT", n1.admin()+"/api/v1/models/fraud/policy", strings.NewReader(`{"distribution":{"require_ready":"quorum"}}`), hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("policy: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", n3.admin()+"/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("promote with a quorum ready: %d %s", resp.StatusCode, b)
	}
	settle(ctx, t, n1, n1, n2, n3)
	for _, m := range []*member{n1, n2} {
		_ = m.n.Server.Reconcile()
		if ver, err := scoreVersion(m); err != nil || ver != "2" {
			t.Fatalf("%s answers %q %v, want v2", m.id, ver, err)
		}
	}
	err = n3.n.Server.Reconcile()
	if err == nil || !strings.Contains(err.Error(), "its validation gate refused the bytes of v2") {
		t.Fatalf("n3 reconciles v2: %v", err)
	}
	if ver, err := scoreVersion(n3); err != nil || ver != "1" {
		t.Fatalf("n3 answers %q %v, want v1 (what it had)", ver, err)
	}
}
