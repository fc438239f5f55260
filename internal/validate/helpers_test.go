package validate

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/internal/badmodels"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// binDir holds the modelgate binary the tests build once per test binary
// run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// modelgateBinary builds ./cmd/modelgate from the repository root (found by
// walking up to go.mod) once per test run.
func modelgateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "modelgate-validate-test-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "modelgate")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/modelgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/modelgate: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	demoOnce  sync.Once
	demoBytes []byte
	demoErr   error
)

// demoModel returns the demo fraud model's bytes (trained once).
func demoModel(t testing.TB) []byte {
	t.Helper()
	demoOnce.Do(func() { demoBytes, demoErr = demo.FraudModel(demo.DefaultSeed) })
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoBytes
}

// editDemo parses the demo model, lets edit change it and returns the bytes.
func editDemo(t testing.TB, edit func(m *onnxpb.ModelProto)) []byte {
	t.Helper()
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(demoModel(t), m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return marshal(t, m)
}

func marshal(t testing.TB, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// floatInit is an FP32 initializer stored as raw_data.
func floatInit(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// fp32Info describes an FP32 tensor; a negative dim is dynamic.
func fp32Info(name string, dims ...int64) *onnxpb.ValueInfoProto {
	return badmodels.FP32Info(name, dims...)
}

// graphModel wraps a graph into an opset-13 model.
func graphModel(g *onnxpb.GraphProto) *onnxpb.ModelProto {
	if g.Name == nil {
		g.Name = proto.String("test")
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:       g,
	}
}

func node(op string, in []string, out ...string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(op + "_" + out[0]), Input: in, Output: out}
}

// The hostile models are shared with the other packages' tests.

func smokeFailModel(t testing.TB) []byte { return badmodels.SmokeFail() }

func hugeInitModel(t testing.TB) []byte {
	b, err := badmodels.HugeInitializer(demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func externalModel(t testing.TB) []byte {
	b, err := badmodels.ExternalData(demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(n int) []byte { return badmodels.Random(n) }
