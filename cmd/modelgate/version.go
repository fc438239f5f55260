package main

import (
	"fmt"
	"io"
	goruntime "runtime"

	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

func init() {
	register(command{name: "version", summary: "print modelgate's, Go's and ONNX Runtime's versions", run: runVersion})
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	lib := fs.String("ort-lib", ortlib.Path(), "ONNX Runtime shared library (env "+ortlib.EnvVar+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "modelgate %s (%s)\n", version, goruntime.Version())
	if err := runtime.Init(*lib); err != nil {
		fmt.Fprintf(stdout, "onnxruntime: not loaded: %v\n", err)
		return nil
	}
	fmt.Fprintf(stdout, "onnxruntime %s (%s)\n", runtime.Version(), *lib)
	return nil
}
