package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/oiptest"
	"github.com/modelgate/modelgate/routing"
)

// canaryKeys is how many distinct routing keys the canary tests send per
// pass. The split is a pure function of the key, so each key's version is
// predicted exactly rather than checked against a tolerance (the share over
// 100,000 keys is routing's own test).
const canaryKeys = 2000

// keyedRequest is a one-row demo request with parameters.routing_key set.
func keyedRequest(key string) []byte {
	base := oiptest.GoodRequest(1)
	return bytes.Replace(base, []byte(`{"id":"42",`), []byte(`{"id":"42","parameters":{"routing_key":`+fmt.Sprintf("%q", key)+`},`), 1)
}

// versionsByKey scores every key once on n (from 8 goroutines) and returns
// the version that answered each; any failure fails the test.
func versionsByKey(t *testing.T, n *node, path string, keys []string) map[string]string {
	t.Helper()
	got := make(map[string]string, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan string, len(keys))
	next := make(chan string)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for k := range next {
				resp, err := c.Post("http://"+n.addr+path, "application/json", bytes.NewReader(keyedRequest(k)))
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r struct {
					Version string `json:"model_version"`
				}
				if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
					errs <- fmt.Sprintf("key %s: %d %s", k, resp.StatusCode, b)
					continue
				}
				mu.Lock()
				got[k] = r.Version
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("scoring failed: %s", e)
	}
	return got
}

// checkSplit asserts that every key was answered by the version the split
// predicts at weightBP, and returns the canary's share.
func checkSplit(t *testing.T, what string, got map[string]string, keys []string, weightBP uint32, champion, canary string) float64 {
	t.Helper()
	n := 0
	for _, k := range keys {
		want := champion
		if routing.ToCanary([]byte(k), weightBP) {
			want = canary
		}
		if got[k] != want {
			t.Fatalf("%s: key %q answered by v%s, want v%s", what, k, got[k], want)
		}
		if want == canary {
			n++
		}
	}
	return float64(n) / float64(len(keys))
}

// waitRouted scores key until version answers it: the node applies a
// registry change asynchronously, shortly after the write is acknowledged.
func waitRouted(t *testing.T, n *node, key, version string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // only a hang gets near this
	for {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(keyedRequest(key)))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"model_version":"`+version+`"`)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %q never reached v%s", key, version)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keyFor returns the first key of keys the split sends to the canary at
// weightBP (canary true) or to the champion.
func keyFor(keys []string, weightBP uint32, canary bool) string {
	for _, k := range keys {
		if routing.ToCanary([]byte(k), weightBP) == canary {
			return k
		}
	}
	panic("no such key")
}

// startCanaryNode starts a node serving the demo model as v1 and a second
// demo model as v2, the canary at weight (percent).
func startCanaryNode(t *testing.T, bin, dir string, weight string) *node {
	t.Helper()
	v1, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	p1 := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(p1, v1, 0o644)
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+p1)
	if code, b := n.register(t, "fraud", v2, ""); code != 201 || !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("register v2: %d %s", code, b)
	}
	setWeight(t, n, weight)
	return n
}

func setWeight(t *testing.T, n *node, weight string) {
	t.Helper()
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/versions/2/stage", strings.NewReader(`{"stage":"canary","weight":`+weight+`}`), "application/json"); code != 200 {
		t.Fatalf("canary at %s%%: %d %s", weight, code, b)
	}
}

// TestCanarySplitIsStickyAcrossRestartsAndNodes: at 10% every routing key
// gets the version the split predicts; the same after three restarts and on
// a second, independently started node; raising the weight to 25% moves
// keys only from the champion to the canary; a version-pinned call
// bypasses the split; the prediction log names the canary's role.
func TestCanarySplitIsStickyAcrossRestartsAndNodes(t *testing.T) {
	bin := buildBinary(t)
	keys := make([]string, canaryKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("card-%06d", i)
	}
	dirA := t.TempDir()
	a := startCanaryNode(t, bin, dirA, "10")
	waitRouted(t, a, keyFor(keys, 1000, true), "2")
	first := versionsByKey(t, a, "/v2/models/fraud/infer", keys)
	share := checkSplit(t, "node A", first, keys, 1000, "1", "2")
	t.Logf("weight 10%%: the canary answered %.1f%% of %d keys", 100*share, len(keys))

	for i := 1; i <= 3; i++ {
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.wait()
		a = startNode(t, bin, a.dataDir)
		waitRouted(t, a, keyFor(keys, 1000, true), "2")
		checkSplit(t, fmt.Sprintf("node A after restart %d", i), versionsByKey(t, a, "/v2/models/fraud/infer", keys), keys, 1000, "1", "2")
	}

	b := startCanaryNode(t, bin, t.TempDir(), "10")
	waitRouted(t, b, keyFor(keys, 1000, true), "2")
	onB := versionsByKey(t, b, "/v2/models/fraud/infer", keys)
	for _, k := range keys {
		if onB[k] != first[k] {
			t.Fatalf("key %q: v%s on node A, v%s on node B", k, first[k], onB[k])
		}
	}

	setWeight(t, a, "25")
	waitRouted(t, a, keyFor(keys, 2500, true), "2")
	raised := versionsByKey(t, a, "/v2/models/fraud/infer", keys)
	checkSplit(t, "node A at 25%", raised, keys, 2500, "1", "2")
	for _, k := range keys {
		if first[k] == "2" && raised[k] != "2" {
			t.Fatalf("raising the weight moved key %q back to the champion", k)
		}
	}

	canaryKey := keyFor(keys, 2500, true)
	pinned := versionsByKey(t, a, "/v2/models/fraud/versions/1/infer", []string{canaryKey})
	if pinned[canaryKey] != "1" {
		t.Fatalf("a call to /versions/1 with a canary key was answered by v%s", pinned[canaryKey])
	}

	// The log says which role answered. Ids are the routing keys here.
	req := bytes.Replace(keyedRequest(canaryKey), []byte(`"id":"42"`), []byte(`"id":"canary-probe"`), 1)
	resp, err := http.Post("http://"+a.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, rec := a.api(t, "GET", "/api/v1/predictions/canary-probe", nil, "")
		if code == 200 {
			if !bytes.Contains(rec, []byte(`"role":"canary"`)) || !bytes.Contains(rec, []byte(`"version":"2"`)) {
				t.Fatalf("the logged prediction does not name the canary: %s", rec)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canary's prediction was never logged: %d %s", code, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRollbackToWarmStandby promotes the canary under load, checks the
// former champion still answers calls pinned to it, then rolls back: the
// flip loads nothing (v1 is loaded once until then) and no request fails
// throughout, including when a standby's TTL runs out.
func TestRollbackToWarmStandby(t *testing.T) {
	bin := buildBinary(t)
	n := startCanaryNode(t, bin, t.TempDir(), "50")
	sc := score(n)
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json"); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	waitRouted(t, n, "any-key", "2")
	pinned := versionsByKey(t, n, "/v2/models/fraud/versions/1/infer", []string{"pinned-client"})
	if pinned["pinned-client"] != "1" {
		t.Fatalf("the standby does not answer calls pinned to it: v%s", pinned["pinned-client"])
	}
	start := time.Now()
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/rollback", strings.NewReader(`{"reason":"test"}`), "application/json"); code != 200 {
		t.Fatalf("rollback: %d %s", code, b)
	}
	waitRouted(t, n, "any-key", "1")
	logsAtRollback := n.logs.String()
	t.Logf("rollback: v1 answered unversioned calls %v after the rollback was acknowledged", time.Since(start))
	for base := sc.ok.Load(); sc.ok.Load() < base+200 && sc.bad.Load() == 0; {
		time.Sleep(10 * time.Millisecond) // let the load run on the flipped table
	}

	// With a TTL the standby is unloaded once it runs out: calls pinned to
	// it then get 404, and unversioned traffic never notices.
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(`{"serving":{"standby_ttl":"1s"}}`), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2,"reason":"again"}`), "application/json"); code != 200 {
		t.Fatalf("promote again: %d %s", code, b)
	}
	waitRouted(t, n, "any-key", "2")
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/versions/1/infer", "application/json", bytes.NewReader(oiptest.GoodRequest(1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby was still loaded long after its 1s TTL (last answer %d)", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	versions := sc.finish(t)
	t.Logf("answers by version: %v, none failed", versions)
	if loads := strings.Count(logsAtRollback, `msg="version loaded" model=fraud version=1 `); loads != 1 {
		t.Fatalf("v1 was loaded %d times; the rollback should flip to the warm standby without loading:\n%s", loads, n.logs.String())
	}
}
