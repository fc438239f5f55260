package validate

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// expandModel asks ONNX Runtime for n FP32 values at its first run, through
// an input-dependent Expand that shape inference cannot size.
func expandModel(t *testing.T, n int64) []byte {
	shape := &onnxpb.TensorProto{Name: proto.String("shape"), Dims: []int64{1},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{n}}
	return marshal(t, graphModel(&onnxpb.GraphProto{
		Node:        []*onnxpb.NodeProto{node("Expand", []string{"x", "shape"}, "y")},
		Initializer: []*onnxpb.TensorProto{shape},
		Input:       []*onnxpb.ValueInfoProto{fp32Info("x", -1)},
		Output:      []*onnxpb.ValueInfoProto{fp32Info("y", -1)},
	}))
}

// refusedForMemory fails t unless r refuses the model because an allocation
// of bytes failed under the child's address-space limit: ONNX Runtime's
// own "Failed to allocate memory … of size N", or the gate's "ran out of
// memory (limit …)" for a child that died of it. A timeout, a latency
// refusal or a pass is the wrong reason: it means the limit was not there.
func refusedForMemory(t *testing.T, r *Report, bytes int64) {
	t.Helper()
	if r.Passed {
		t.Fatalf("passed: an allocation of %d bytes fit, so the child ran without its memory limit: %+v", bytes, r)
	}
	ortAlloc := strings.Contains(r.Reason, "Failed to allocate memory") && strings.Contains(r.Reason, strconv.FormatInt(bytes, 10))
	childOOM := strings.Contains(r.Reason, "ran out of memory (limit")
	if !ortAlloc && !childOOM || strings.Contains(r.Reason, "timed out") {
		t.Fatalf("refused, but not for the memory limit (an allocation of %d bytes): %q", bytes, r.Reason)
	}
}

// TestRunHugeAllocationRefusedForMemory: a first run that needs 1.5 GiB,
// under a 2 GiB address-space limit of which the Go runtime and ONNX
// Runtime take about 1.4, is refused for the failed allocation — and
// at the first allocation, so the generous timeout cannot be the reason.
// Without the limit the same allocation succeeds on any machine that runs
// these tests, and the model passes (one timed run, so that failure comes
// in seconds, not the minutes of 100 runs of a 1.5 GiB fill).
func TestRunHugeAllocationRefusedForMemory(t *testing.T) {
	const n = 3 << 27 // FP32 values: 1.5 GiB
	r := run(t, expandModel(t, n), Options{MaxMemory: 2 << 30, Timeout: 2 * time.Minute, LatencyRuns: 1})
	refusedForMemory(t, r, 4*n)
}
