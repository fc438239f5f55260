package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/modelgate/modelgate/bench/baseline"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

func init() {
	register(command{name: "baseline", summary: "run a baseline server (bare or nethttp) for benchmarks", run: runBaseline})
}

// runBaseline runs one baseline server until SIGTERM or SIGINT:
//
//	modelgate baseline bare|nethttp --model F.onnx --listen 127.0.0.1:PORT [--ort-lib L] [--sessions N]
//
// The bench harness starts it as a child process beside the gateway, so
// each has its own ONNX Runtime environment. Once listening it prints one
// line, "modelgate baseline: KIND listening on http://ADDR …", to stdout
// (with --listen …:0 the line names the port the kernel chose).
func runBaseline(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: modelgate baseline bare|nethttp --model F.onnx [--listen ADDR] [--ort-lib L] [--sessions N]")
		fmt.Fprintln(stderr, "  bare     fasthttp, the gateway's OIP codec, one preallocated ORT session per core (batch 1)")
		fmt.Fprintln(stderr, "  nethttp  net/http, encoding/json, per-request tensors on a pool of ORT sessions")
		if len(args) == 0 {
			return usageError("want a baseline: bare or nethttp")
		}
		return nil
	}
	kind, err := baseline.ParseKind(args[0])
	if err != nil {
		return usageError("unknown baseline " + strconv.Quote(args[0]) + ": want bare or nethttp")
	}
	fs := newFlags("baseline "+args[0], stderr)
	model := fs.String("model", "", "ONNX model file: one FP32 input [N,F], one FP32 output [N,K] (required)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on (port 0 picks a free one)")
	lib := fs.String("ort-lib", ortlib.Path(), "ONNX Runtime shared library, "+runtime.RequiredVersion+"x (env "+ortlib.EnvVar+"; `make ort` fetches it)")
	sessions := fs.Int("sessions", 0, "ORT sessions, one intra-op thread each (0: GOMAXPROCS)")
	input := fs.String("input", "", "model input requests name (default: the model's only input)")
	output := fs.String("output", "", "model output answered (default: the model's first output)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *model == "" {
		return usageError("--model is required")
	}
	if *sessions < 0 {
		return usageError("--sessions must not be negative")
	}
	onnx, err := os.ReadFile(*model)
	if err != nil {
		return err
	}
	srv, err := kind.Start(baseline.Config{
		Listen: *listen, Model: onnx, InputName: *input, OutputName: *output,
		Sessions: *sessions, ORTLib: *lib,
	})
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)
	fmt.Fprintf(stdout, "modelgate baseline: %s listening on http://%s (model %s, onnxruntime %s)\n", kind, srv.Addr(), *model, runtime.Version())
	<-stop
	return srv.Close()
}
