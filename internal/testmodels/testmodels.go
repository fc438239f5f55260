// Package testmodels finds the small ONNX models that ship in the
// onnxruntime_go module's test_data folder, so tests run real models without
// downloading anything.
package testmodels

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	err  error
)

// Dir returns the onnxruntime_go module's test_data folder, asking the go
// command where the module is (tests always run with it at hand).
func Dir() (string, error) {
	once.Do(func() {
		var out []byte
		out, err = exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
		if err != nil {
			return
		}
		dir = filepath.Join(strings.TrimSpace(string(out)), "test_data")
		_, err = os.Stat(dir)
	})
	return dir, err
}

// Read returns the bytes of one model in test_data, failing t if it cannot.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	d, err := Dir()
	if err != nil {
		t.Fatalf("cannot find onnxruntime_go's test_data: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(d, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
