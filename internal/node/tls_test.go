package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/cluster"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/peer"
	"github.com/modelgate/modelgate/internal/peer/peertest"
	"github.com/modelgate/modelgate/runtime"
)

// startTLS is member.start with the admin API (and every request to a
// peer) mutual TLS over tc, as serve --admin-tls-* wires it.
func (m *member) startTLS(boot bool, tc *tls.Config) *peer.Client { return m.startWith(boot, tc, nil) }

// startWith is member.start with admin TLS over tc (nil: plain http) and
// the Raft transport under fault (nil: none).
func (m *member) startWith(boot bool, tc *tls.Config, fault *cluster.Fault) *peer.Client {
	t := m.t
	t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.BindAddr, cfg.Bootstrap = m.id, m.dir, m.raft, boot
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	cfg.ApplyTimeout = m.applyTO
	cfg.Logger = clusterTestLogger()
	cfg.Fault = fault
	c, err := cluster.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	if m.store, err = artifact.Open(filepath.Join(m.dir, "artifacts"), artifact.Config{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.store.Close() })
	peers := peer.New(peer.Config{TLS: tc, Token: clusterSecret})
	gw := gateway.Config{
		Auth:          gateway.NewAuth(gateway.NewToken("ops", clusterSecret, gateway.ScopeAdmin)),
		Validator:     localValidator,
		MaxModelBytes: 64 << 20,
		ApplyTimeout:  m.applyTO,
		Logger:        clusterTestLogger(),
		Node:          m.id,
		AdminTLS:      tc,
		Peers:         peers,
	}
	m.n = startNode(t, Config{Gateway: gw, Control: c, Artifacts: m.store, NoDrift: true, Runtime: runtime.Config{Sessions: 1}})
	m.n.Server.SetReady(true)
	c.AdvertiseAdmin(m.n.AdminAddr())
	t.Cleanup(m.stop)
	return peers
}

// TestClusterAdminMutualTLS runs three voters whose admin APIs, and every
// request one node makes to another, are mutual TLS with certificates of
// one CA. A node joins through the leader and another through a follower
// (the join forwarded over TLS); a version uploaded to a follower is
// forwarded to the leader and committed; GET /api/v1/cluster on a
// follower reports every peer from its own answer (the probes over TLS).
// A client presenting a certificate another CA signed is refused in the
// handshake, a member refuses to talk to a server whose certificate
// another CA signed, and plain http to a TLS admin port is answered 400
// saying to use https.
func TestClusterAdminMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	if err := runtime.Init(ortlib.Path()); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca, rogue := peertest.NewCA(t, "cluster-ca"), peertest.NewCA(t, "rogue-ca")
	load := func(ca *peertest.CA, name string, trust string) *tls.Config {
		cert, key := ca.Leaf(t, name)
		tc, err := peer.LoadTLS(cert, key, trust, peer.Require)
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	mk := func(id string) *member {
		return &member{t: t, id: id, dir: t.TempDir(), raft: freeRaftAddr(t), voter: true, applyTO: 10 * time.Second}
	}
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	// The test's own client is a member's: certificate of the cluster CA.
	client := peer.New(peer.Config{TLS: load(ca, "operator", ca.CAFile), Token: clusterSecret})
	send := func(method string, m *member, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, client.URL(m.n.AdminAddr(), path), body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s on %s: %v", method, path, m.id, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	join := func(via, m *member) {
		t.Helper()
		body := fmt.Sprintf(`{"id":%q,"raft_addr":%q,"admin_addr":%q,"voter":true}`, m.id, m.raft, m.n.AdminAddr())
		if resp, b := send("POST", via, "/api/v1/cluster/join", strings.NewReader(body), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("join %s via %s: %d %s", m.id, via.id, resp.StatusCode, b)
		}
	}

	n1.startTLS(true, load(ca, "n1", ca.CAFile))
	if err := n1.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := n1.c.LeaderAdmin(); a == ""; _, a = n1.c.LeaderAdmin() {
		select {
		case <-ctx.Done():
			t.Fatal("n1 never announced its admin address")
		case <-time.After(20 * time.Millisecond):
		}
	}
	n2.startTLS(false, load(ca, "n2", ca.CAFile))
	n3.startTLS(false, load(ca, "n3", ca.CAFile))
	join(n1, n2)
	if err := n2.c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	join(n2, n3) // forwarded by n2 to n1 over mutual TLS
	settle(ctx, t, n1, n1, n2, n3)

	// A write on a follower, forwarded to the leader over mutual TLS.
	onnx, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, _ := mw.CreateFormFile("model", "model.onnx")
		_, _ = part.Write(onnx)
		pw.CloseWithError(mw.Close())
	}()
	resp, b := send("POST", n3, "/api/v1/models/fraud/versions", pr, map[string]string{"Content-Type": mw.FormDataContentType(), "Idempotency-Key": "tls-1"})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(gateway.HeaderForwardedTo) != "n1" {
		t.Fatalf("upload through n3: %d (forwarded to %q) %s", resp.StatusCode, resp.Header.Get(gateway.HeaderForwardedTo), b)
	}
	settle(ctx, t, n1, n1, n2, n3)

	// The cluster view on a follower: every peer answered its probe.
	resp, b = send("GET", n2, "/api/v1/cluster", nil, nil)
	var view struct {
		Leader  string `json:"leader"`
		Members []struct {
			ID           string `json:"id"`
			AppliedIndex uint64 `json:"applied_index"`
			Source       string `json:"source"`
			Unreachable  string `json:"unreachable"`
		} `json:"members"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(b), &view) != nil || view.Leader != "n1" || len(view.Members) != 3 {
		t.Fatalf("GET /api/v1/cluster on n2: %d %s", resp.StatusCode, b)
	}
	for _, mv := range view.Members {
		if mv.ID != "n2" && (mv.Source != "peer" || mv.AppliedIndex == 0 || mv.Unreachable != "") {
			t.Fatalf("member %s was not probed over TLS: %s", mv.ID, b)
		}
	}

	// A client with a certificate of another CA (trusting ours) is
	// refused by the member in the handshake.
	roguePeer := load(rogue, "rogue", ca.CAFile)
	cert := roguePeer.Certificates[0]
	roguePeer.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	rc := peer.New(peer.Config{TLS: roguePeer, Token: clusterSecret})
	req, _ := http.NewRequestWithContext(ctx, "GET", rc.URL(n1.n.AdminAddr(), "/api/v1/cluster"), nil)
	if resp, err := rc.Do(req); err == nil || !strings.Contains(err.Error(), "remote error: tls: unknown certificate authority") {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("a peer with another CA's certificate: %v, want the handshake refused", err)
	}
	// A member does not talk to a server whose certificate another CA
	// signed (here: a member that trusts only the rogue CA, dialing ours).
	misled := peer.New(peer.Config{TLS: load(ca, "misled", rogue.CAFile), Token: clusterSecret})
	req, _ = http.NewRequestWithContext(ctx, "GET", misled.URL(n1.n.AdminAddr(), "/api/v1/cluster"), nil)
	if resp, err := misled.Do(req); err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("a server certificate of another CA: %v, want it refused", err)
	}

	// Plain http to the TLS admin port.
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://"+n1.n.AdminAddr()+"/api/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+clusterSecret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("plain http to a TLS admin port: %v, want a 400 that says why", err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(pb), "speaks TLS") {
		t.Fatalf("plain http to a TLS admin port: %d %s", resp.StatusCode, pb)
	}
}
