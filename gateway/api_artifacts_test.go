package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/artifact"
)

// TestArtifactEndpoint: GET /api/v1/artifacts/{digest} streams the stored
// bytes with their Content-Length to an admin token (bare or sha256:
// digest); an unknown digest is 404, a malformed one 400, and a token with
// only the read scope is refused 403.
func TestArtifactEndpoint(t *testing.T) {
	store, err := artifact.Open(t.TempDir(), artifact.Config{MaxBytes: 8 << 20, ChunkSize: artifact.MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	data := bytes.Repeat([]byte("modelgate artifact "), 40000) // several chunks
	digest, _, err := store.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, gateway.Config{Artifacts: store, MaxModelBytes: 8 << 20,
		Auth: gateway.NewAuth(gateway.NewToken("ops", testSecret, gateway.ScopeAdmin), gateway.NewToken("viewer", "read-only-secret", gateway.ScopeRead))})
	f := func(id, token string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+srv.AdminAddr()+"/api/v1/artifacts/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s: %d %v %.200s, want %d", id, resp.StatusCode, err, b, want)
		}
		if want == http.StatusOK && resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Fatalf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), len(data))
		}
		return b
	}
	if b := f(digest, testSecret, http.StatusOK); !bytes.Equal(b, data) {
		t.Fatalf("got %d bytes, not the stored ones", len(b))
	}
	if b := f("sha256:"+digest, testSecret, http.StatusOK); !bytes.Equal(b, data) {
		t.Fatal("sha256: prefix")
	}
	f(strings.Repeat("0", 64), testSecret, http.StatusNotFound)
	f("not-a-digest", testSecret, http.StatusBadRequest)
	f(digest, "read-only-secret", http.StatusForbidden)
}
