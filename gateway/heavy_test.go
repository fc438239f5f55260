package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// heavyModels take tens of seconds per ORT Run on a shared 2-core machine
// (example_big_compute.onnx: 20-65 s for its three runs here while other
// builds ran). The race detector adds nothing to their C++ compute, only
// to the Go side's handling of their 200 MB of data, and a race run with
// other work on the cores took one past its client timeout (110 s). They
// are served in the ordinary run and skipped in the race run.
var heavyModels = map[string]bool{"example_big_compute.onnx": true}

// skipHeavyUnderRace skips a heavy model's test in the race run.
func skipHeavyUnderRace(t *testing.T, name string) {
	t.Helper()
	if raceEnabled && heavyModels[name] {
		t.Skipf("%s is served in the run without -race: under it the model costs minutes and tests no Go concurrency", name)
	}
}

// heavyClient waits as long as only a hang could take: a heavy model's
// request legitimately takes tens of seconds on a busy machine, well past
// the 30 s of the shared client.
var heavyClient = &http.Client{Timeout: 10 * time.Minute}

// postHeavy is post through heavyClient.
func postHeavy(t testing.TB, addr, path string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := heavyClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
