package node

import (
	"context"
	"encoding/json"
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

// openRegistry opens a one-voter cluster on loopback and waits until it
// leads.
func openRegistry(t *testing.T) *cluster.Node {
	t.Helper()
	ccfg := cluster.DefaultConfig()
	ccfg.NodeID, ccfg.DataDir, ccfg.BindAddr, ccfg.Bootstrap = "node-test", t.TempDir(), "127.0.0.1:0", true
	ccfg.Logger = slog.New(slog.DiscardHandler)
	c, err := cluster.Open(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.Gateway.Listen, cfg.Gateway.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestShutdownCancelsWebhookDelivery: a retraining webhook that never
// answers does not hold Shutdown past its drain deadline, and the
// cancelled delivery is not recorded failed (the next leader sends it).
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

	reg := openRegistry(t)
	pol := registry.DefaultPolicy()
	pol.Retraining = registry.RetrainingPolicy{Enabled: true, URL: hook.URL, SecretRef: "trainer", Cooldown: registry.Duration(time.Hour)}
	ev := lifecycle.Event{Event: lifecycle.EventDrift, ID: "drift-shutdown-test", Time: time.Now().UTC(), Model: "fraud", Version: 1}
	evJSON, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range []registry.Command{
		{Time: time.Now().UTC(), Actor: "test", IdempotencyKey: "create", Args: &registry.CreateModelArgs{Model: "fraud", Policy: &pol}},
		// What a leader that stopped before delivering leaves behind.
		{Time: time.Now().UTC(), Actor: "drift", IdempotencyKey: ev.ID + "/requested",
			Args: &registry.RecordAlertArgs{Model: "fraud", Kind: lifecycle.KindRetrainingRequested, Evidence: evJSON}},
	} {
		if _, err := reg.Apply(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", cmd.Op(), err)
		}
	}

	n := startNode(t, Config{Control: reg, Secrets: map[string][]byte{"trainer": []byte("webhook-signing-secret")}})
	n.Controller().Step()
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
	sctx, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer scancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(sctx) }()
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
	reg.View(func(st *registry.State) {
		for _, r := range st.Audit(registry.AuditFilter{Model: "fraud"}) {
			if r.Kind == lifecycle.KindRetrainingFailed || r.Kind == lifecycle.KindRetrainingDelivered {
				t.Errorf("a delivery cancelled by Shutdown was recorded %s (%s): the next leader would not send it", r.Kind, r.Reason)
			}
		}
	})
}

// TestShutdownReturnsByItsDeadline: background work still running when the
// drain deadline comes does not hold Shutdown: it returns by the deadline,
// saying what did not finish.
func TestShutdownReturnsByItsDeadline(t *testing.T) {
	n := startNode(t, Config{Control: openRegistry(t)})
	release := make(chan struct{})
	defer close(release)
	n.wg.Add(1)
	go func() { // background work that ignores the stop signal
		defer n.wg.Done()
		<-release
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
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
