package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/lifecycle"
	"github.com/modelgate/modelgate/registry"
)

// TestShutdownCancelsWebhookDelivery: a retraining webhook that never
// answers does not hold Shutdown past its drain deadline. Before, the
// delivery ran on context.Background() with a 5-minute timeout (and a 30 s
// client timeout per attempt) and Shutdown waited for it without a
// deadline, so SIGTERM could take minutes.
func TestShutdownCancelsWebhookDelivery(t *testing.T) {
	arrived := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	var once sync.Once
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		// Read to the end: net/http notices a client that hangs up (the
		// request's context ends) only once the body is consumed.
		_, _ = io.Copy(io.Discard, r.Body)
		// Never answers: waits until the sender gives up on the request.
		<-r.Context().Done()
		once.Do(func() { close(cancelled) })
	}))
	defer hook.Close()
	// On a failure the handler may still wait: drop its connection so
	// Close does not wait for it.
	defer hook.CloseClientConnections()

	ccfg := cluster.DefaultConfig()
	ccfg.NodeID, ccfg.DataDir, ccfg.BindAddr = "shutdown-test", t.TempDir(), "127.0.0.1:0"
	ccfg.Logger = slog.New(slog.DiscardHandler)
	node, err := cluster.Open(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	s := New(Config{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", Control: node,
		Secrets: map[string][]byte{"trainer": []byte("webhook-signing-secret")}})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.goDeliver("fraud", 1, registry.RetrainingPolicy{Enabled: true, URL: hook.URL, SecretRef: "trainer"},
		lifecycle.Event{Event: "drift", ID: "fraud/1/episode", Time: time.Now(), Model: "fraud", Version: 1})
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook request never arrived")
	}

	select {
	case <-cancelled:
		t.Fatal("the webhook request ended before Shutdown: the test proves nothing")
	default:
	}
	// The drain deadline is short; the outer guard only a hang exceeds
	// (the webhook client alone waits 30 s per attempt).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown still waiting for the webhook delivery 20 s after a 500 ms drain deadline")
	}
	select {
	case <-cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook request was never cancelled: the delivery outlived Shutdown")
	}
}

// TestShutdownReturnsByItsDeadline: a request still running when the drain
// deadline comes does not hold Shutdown: it returns by the deadline,
// saying what did not finish.
func TestShutdownReturnsByItsDeadline(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"})
	release := make(chan struct{})
	defer close(release)
	s.wg.Add(1)
	go func() { // background work that ignores the stop signal
		defer s.wg.Done()
		<-release
	}()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Shutdown reported a clean drain with work still running")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want the deadline named", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown waited past its deadline for background work")
	}
}
