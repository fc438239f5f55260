package runtime_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/badmodels"
	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/runtime"
	"google.golang.org/protobuf/proto"
)

// batchSizeModel reports, in every element of its output "n", the number of
// rows of the ORT Run that computed it: n = ReduceSum over rows of (x·0+1),
// broadcast back over the rows. So each call's answer says how large the
// batch it ran in really was, seen by ONNX Runtime itself and not by the
// batcher's own bookkeeping. "echo" returns x, to check each call gets its
// own rows back.
func batchSizeModel(t testing.TB) []byte {
	t.Helper()
	f32 := func(name string, v float32) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{v}}
	}
	axes := &onnxpb.TensorProto{Name: proto.String("axes"), Dims: []int64{1},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{0}}
	nd := func(op string, in []string, out string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(op + "_" + out), Input: in, Output: []string{out}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("batch_size"),
			Node: []*onnxpb.NodeProto{
				nd("Mul", []string{"x", "zero"}, "zeros"),
				nd("Add", []string{"zeros", "one"}, "ones"),
				nd("ReduceSum", []string{"ones", "axes"}, "count"), // [1,4], each the row count
				nd("Mul", []string{"ones", "count"}, "n"),
				nd("Identity", []string{"x"}, "echo"),
			},
			Initializer: []*onnxpb.TensorProto{f32("zero", 0), f32("one", 1), axes},
			Input:       []*onnxpb.ValueInfoProto{badmodels.FP32Info("x", -1, 4)},
			Output:      []*onnxpb.ValueInfoProto{badmodels.FP32Info("n", -1, 4), badmodels.FP32Info("echo", -1, 4)},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sizeCall is a call of rows rows, each row holding tag.
func sizeCall(rows int, tag float32) *runtime.Call {
	c := runtime.NewCall()
	v := make([]float32, 4*rows)
	for i := range v {
		v[i] = tag
	}
	c.AddInput().SetFloat32s("x", []int64{int64(rows), 4}, v)
	return c
}

// runRows checks a call's answer and returns the rows of the ORT Run it
// was part of.
func runRows(c *runtime.Call, rows int, tag float32) (int, error) {
	n, echo := c.Outputs[0].Float32s(), c.Outputs[1].Float32s()
	if len(n) != 4*rows || len(echo) != 4*rows {
		return 0, fmt.Errorf("a call of %d rows got outputs of shapes %v and %v", rows, c.Outputs[0].Shape, c.Outputs[1].Shape)
	}
	for i := range echo {
		if echo[i] != tag {
			return 0, fmt.Errorf("a call of %d rows tagged %v got back %v: another call's rows", rows, tag, echo)
		}
		if n[i] != n[0] {
			return 0, fmt.Errorf("a call of %d rows ran in batches of %v at once", rows, n)
		}
	}
	return int(n[0]), nil
}

// TestBatchNeverExceedsMaxBatch: 32 goroutines send calls of 1-5 rows to a
// batcher with MaxBatch 8; the model itself reports every ORT Run's rows,
// and none may exceed 8, nor be smaller than the call. MaxDelay is the
// longest allowed, so batches fill up whatever the machine's speed; at
// least one run must stack several calls, or the test tested nothing.
func TestBatchNeverExceedsMaxBatch(t *testing.T) {
	const maxBatch = 8
	var mu sync.Mutex
	var onBatchRows []int
	m, err := runtime.Load(batchSizeModel(t), runtime.Config{Sessions: 2, MaxBatch: maxBatch, MaxDelay: time.Second, QueueTimeout: time.Minute,
		OnBatch: func(_, rows int) { mu.Lock(); onBatchRows = append(onBatchRows, rows); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const callers, per = 32, 12
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	seen := make(chan int, callers*per)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				rows := 1 + (g+i)%5
				tag := float32(g*per + i)
				c := sizeCall(rows, tag)
				if err := m.Infer(c); err != nil {
					errs <- err
					return
				}
				n, err := runRows(c, rows, tag)
				if err == nil && (n > maxBatch || n < rows) {
					err = fmt.Errorf("a call of %d rows ran in an ORT Run of %d rows; MaxBatch is %d", rows, n, maxBatch)
				}
				if err != nil {
					errs <- err
					return
				}
				seen <- n - rows
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(seen)
	for err := range errs {
		t.Fatal(err)
	}
	stacked := 0
	for extra := range seen {
		if extra > 0 {
			stacked++
		}
	}
	if stacked == 0 {
		t.Fatal("no call shared its ORT Run with another: the batcher never batched")
	}
	for _, r := range onBatchRows {
		if r > maxBatch {
			t.Fatalf("OnBatch reported a batch of %d rows; MaxBatch is %d", r, maxBatch)
		}
	}
}

// TestBatchLargerCallRunsAlone: a call larger than MaxBatch is never split
// and never joined by another: its ORT Run has exactly its rows, even with
// small calls queued beside it.
func TestBatchLargerCallRunsAlone(t *testing.T) {
	m, err := runtime.Load(batchSizeModel(t), runtime.Config{Sessions: 1, MaxBatch: 4, MaxDelay: 50 * time.Millisecond, QueueTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := 1
			if g%4 == 0 {
				rows = 9
			}
			c := sizeCall(rows, float32(g))
			if err := m.Infer(c); err != nil {
				errs <- err
				return
			}
			n, err := runRows(c, rows, float32(g))
			if err == nil && rows == 9 && n != 9 {
				err = fmt.Errorf("a call of 9 rows (over MaxBatch 4) ran in an ORT Run of %d rows, want it alone", n)
			}
			if err == nil && rows == 1 && n > 4 {
				err = fmt.Errorf("a call of 1 row ran in an ORT Run of %d rows; MaxBatch is 4", n)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
