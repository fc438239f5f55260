package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/onnxpb"
)

// TestDistributionTiming measures, on three nodes on 127.0.0.1, the time
// from a registration POSTed to a follower to every node serving the
// version, for models of 1 MB and 50 MB (the demo model with an unused
// initializer of random bytes: ONNX Runtime parses and drops it, so the
// transfer, digest, store and gate see the full size). Each round
// registers a new model, whose first version is champion at once, and
// polls each node's scoring endpoint every 10 ms. It prints figures and
// asserts nothing about them; run it on purpose:
//
//	MODELGATE_DIST_TIMING=3 go test -count=1 -v -run TestDistributionTiming ./internal/node/
func TestDistributionTiming(t *testing.T) {
	rounds := 0
	fmt.Sscan(os.Getenv("MODELGATE_DIST_TIMING"), &rounds)
	if rounds <= 0 {
		t.Skip("a measurement: set MODELGATE_DIST_TIMING=ROUNDS")
	}
	ctx, mk := clusterTest(t)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	n1, n2, n3 := mk("n1"), mk("n2"), mk("n3")
	for _, m := range []*member{n1, n2, n3} {
		m.raftDefaults = true // three nodes' hashing and ONNX Runtime share this machine's cores
	}
	bootCluster(ctx, t, n1, n2, n3)
	base, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1 << 20, 50 << 20} {
		var all []time.Duration
		for r := range rounds {
			onnx := padModel(t, base, size, uint64(r+1))
			model := fmt.Sprintf("pad%dmb-%d", size>>20, r)
			start := time.Now()
			resp, b := upload(t, n2, model, onnx, model)
			for resp.StatusCode == http.StatusServiceUnavailable && ctx.Err() == nil {
				t.Logf("upload %s: %d %s; retrying with the same key", model, resp.StatusCode, b)
				resp, b = upload(t, n2, model, onnx, model)
			}
			registered := time.Since(start)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("upload %s: %d %s", model, resp.StatusCode, b)
			}
			var per []string
			var last time.Duration
			for _, m := range []*member{n1, n2, n3} {
				for !serves(m, model) {
					select {
					case <-ctx.Done():
						t.Fatalf("%s never served %s", m.id, model)
					case <-time.After(10 * time.Millisecond):
					}
				}
				d := time.Since(start)
				last = max(last, d)
				per = append(per, fmt.Sprintf("%s %v", m.id, d.Round(time.Millisecond)))
			}
			all = append(all, last)
			t.Logf("%d MB (%d bytes), round %d: POST answered after %v; serving: %s; all three after %v",
				size>>20, len(onnx), r+1, registered.Round(time.Millisecond), strings.Join(per, ", "), last.Round(time.Millisecond))
		}
		slices.Sort(all)
		t.Logf("%d MB: median %v, min %v, max %v over %d rounds", size>>20, all[len(all)/2].Round(time.Millisecond),
			all[0].Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond), rounds)
	}
}

// serves reports whether m answers model's scoring endpoint.
func serves(m *member, model string) bool {
	resp, err := http.Get("http://" + m.n.Addr() + "/v2/models/" + model + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// padModel returns onnx with an unused FLOAT initializer of random bytes
// that brings it to about size bytes.
func padModel(t *testing.T, onnx []byte, size int, seed uint64) []byte {
	t.Helper()
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(onnx, &m); err != nil {
		t.Fatal(err)
	}
	n := (size - len(onnx)) / 4
	raw := make([]byte, 4*n)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 0; i+8 <= len(raw); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	// Finite floats only: clear each value's exponent's top bit.
	for i := 3; i < len(raw); i += 4 {
		raw[i] &= 0x3f
	}
	m.Graph.Initializer = append(m.Graph.Initializer, &onnxpb.TensorProto{
		Name: proto.String("padding"), Dims: []int64{int64(n)},
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw,
	})
	b, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
