package gateway_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
)

// follower is a gateway.Cluster that is never the leader and names a
// leader at a fixed admin address: what a follower's forwarding sees.
type follower struct{ leaderAdmin string }

func (f follower) NodeID() string                                    { return "f1" }
func (f follower) IsLeader() bool                                    { return false }
func (f follower) LeaderAdmin() (string, string)                     { return "leader", f.leaderAdmin }
func (f follower) AppliedIndex() uint64                              { return 7 }
func (f follower) WaitApplied(context.Context, uint64) error         { return nil }
func (f follower) WaitLeader(context.Context) error                  { return nil }
func (f follower) CatchUp(context.Context) error                     { return nil }
func (f follower) LinearizableRead(context.Context) error            { return nil }
func (f follower) Members() ([]gateway.ClusterMember, error)         { return nil, nil }
func (f follower) Join(context.Context, gateway.ClusterMember) error { return nil }
func (f follower) Remove(context.Context, string) error              { return nil }

// TestForwardStreamsUpload: a registration sent to a follower reaches the
// leader while the client is still sending it — the follower streams the
// upload through, it does not read it whole first — with the caller's
// token and Idempotency-Key, and the leader's answer comes back naming it.
// (The leader here is an HTTP server standing in for one, because what is
// asserted is when its bytes arrive; TestClusterForwarding in
// internal/node forwards real uploads between real nodes.)
func TestForwardStreamsUpload(t *testing.T) {
	const half = 2 << 20
	got := make(chan struct{})
	hdr := make(chan http.Header, 1)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr <- r.Header.Clone()
		n, err := io.CopyN(io.Discard, r.Body, half)
		if err != nil || n != half {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		close(got)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set(gateway.HeaderAppliedIndex, "7")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"model":"fraud","version":1}`)
	}))
	defer leader.Close()
	srv := startServer(t, gateway.Config{
		Auth:          gateway.NewAuth(gateway.NewToken("tester", testSecret, gateway.ScopeAdmin)),
		Cluster:       follower{leader.Listener.Addr().String()},
		MaxModelBytes: 64 << 20,
	})

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	sendErr := make(chan error, 1)
	go func() {
		part, err := mw.CreateFormFile("model", "model.onnx")
		if err == nil {
			_, err = part.Write(bytes.Repeat([]byte{1}, half+1))
		}
		if err != nil {
			pw.CloseWithError(err)
			sendErr <- err
			return
		}
		// The rest is sent only once the leader has the first half: a
		// follower that buffered the upload would wait here forever.
		select {
		case <-got:
		case <-time.After(60 * time.Second):
			pw.CloseWithError(io.ErrUnexpectedEOF)
			sendErr <- io.ErrUnexpectedEOF
			return
		}
		_, err = part.Write(bytes.Repeat([]byte{2}, half))
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
		sendErr <- err
	}()
	req, _ := http.NewRequest("POST", "http://"+srv.AdminAddr()+"/api/v1/models/fraud/versions", pr)
	req.Header.Set("Authorization", "Bearer "+testSecret)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Idempotency-Key", "upload-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-sendErr; err != nil {
		t.Fatalf("the leader did not receive the upload while it was being sent (buffered by the follower?): %v", err)
	}
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(gateway.HeaderForwardedTo) != "leader" || !bytes.Contains(body, []byte(`"version":1`)) {
		t.Fatalf("forwarded upload: %d (forwarded to %q) %s", resp.StatusCode, resp.Header.Get(gateway.HeaderForwardedTo), body)
	}
	h := <-hdr
	if h.Get("Authorization") != "Bearer "+testSecret || h.Get("Idempotency-Key") != "upload-1" || h.Get(gateway.HeaderForwardedBy) != "f1" {
		t.Fatalf("headers at the leader: %v", h)
	}
}
