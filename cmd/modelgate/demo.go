package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/internal/train"
)

func init() {
	register(command{name: "demo", summary: "build the demo fraud model, or print demo scoring requests", run: runDemo})
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("want a subcommand: model or request (modelgate demo model -h)")
	}
	switch args[0] {
	case "model":
		return runDemoModel(args[1:], stdout, stderr)
	case "request":
		return runDemoRequest(args[1:], stdout, stderr)
	}
	return usageError("unknown subcommand " + strconv.Quote(args[0]) + ": want model or request")
}

// runDemoModel trains the demo model on synthetic card transactions and
// writes it as ONNX. The same seed always writes the same bytes.
func runDemoModel(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo model", stderr)
	out := fs.String("out", "fraud.onnx", "where to write the ONNX model")
	seed := fs.Int64("seed", demo.DefaultSeed, "training seed (same seed, same bytes)")
	kind := fs.String("kind", "lr", "lr (logistic regression, the demo) or mlp (a two-layer MLP, for batching benchmarks)")
	hidden := fs.Int("hidden", 64, "mlp: width of each hidden layer")
	profileOut := fs.String("profile-out", "", "lr: also write the model's drift reference profile (from its training rows) here, for serve --profile or registration")
	if err := parse(fs, args); err != nil {
		return err
	}
	var b, profile []byte
	var err error
	switch *kind {
	case "lr":
		var r *demo.Result[*train.LogisticRegression]
		if r, err = demo.TrainFraudModel(*seed); err == nil {
			b = r.ONNX
			if *profileOut != "" {
				var p *drift.Profile
				if p, err = demo.FraudProfile(*seed, r.Model); err == nil {
					profile, err = json.Marshal(p)
				}
			}
		}
	case "mlp":
		if *profileOut != "" {
			return usageError("--profile-out is for --kind lr")
		}
		b, err = demo.FraudMLP(*seed, *hidden)
	default:
		return usageError("--kind must be lr or mlp, got " + strconv.Quote(*kind))
	}
	if err != nil {
		return err
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := writeAtomic(*out, b); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	fmt.Fprintf(stdout, "wrote %s (%s, %d bytes, sha256 %s)\n", *out, *kind, len(b), hex.EncodeToString(sum[:]))
	if profile != nil {
		if err := writeAtomic(*profileOut, profile); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (its drift reference profile, %d training rows)\n", *profileOut, demo.ProfileRows)
	}
	return nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// a reader never sees half a file.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runDemoRequest prints an OIP request body of synthetic transactions for
// the demo model, ready for curl -d @-.
func runDemoRequest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo request", stderr)
	rows := fs.Int("rows", 1, "transactions in the request")
	seed := fs.Int64("seed", 7, "generator seed")
	id := fs.String("id", "", "request id (omitted when empty: the node generates one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rows < 1 || *rows > 100000 {
		return usageError("--rows must be between 1 and 100000")
	}
	g := fraud.NewGenerator(*seed)
	row := make([]float32, fraud.NumFeatures)
	b := []byte(`{`)
	if *id != "" {
		b = append(b, `"id":`...)
		b = strconv.AppendQuote(b, *id)
		b = append(b, ',')
	}
	b = append(b, `"inputs":[{"name":"features","shape":[`...)
	b = strconv.AppendInt(b, int64(*rows), 10)
	b = append(b, `,30],"datatype":"FP32","data":[`...)
	for r := 0; r < *rows; r++ {
		g.Next(row)
		for i, v := range row {
			if r > 0 || i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', 6, 32)
		}
	}
	b = append(b, "]}]}\n"...)
	_, err := stdout.Write(b)
	return err
}
