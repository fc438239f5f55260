// Package ortlib finds ONNX Runtime's shared library the way every modelgate
// program and test does: $MODELGATE_ORT_LIB, else the copy `make ort` leaves
// in the repository's .cache folder.
package ortlib

import (
	"os"
	"path/filepath"
)

// Version is the ONNX Runtime release the Makefile fetches and the code is
// tested with.
const Version = "1.30.0"

// EnvVar names the environment variable that points at the library.
const EnvVar = "MODELGATE_ORT_LIB"

// RelPath is where `make ort` puts the library, relative to the repository root.
var RelPath = filepath.Join(".cache", "onnxruntime-"+Version, "libonnxruntime.so.1")

// Path returns the library's path: $MODELGATE_ORT_LIB when set, else the
// first RelPath found walking up from the working directory and from the
// executable's directory. It returns RelPath itself when nothing is found,
// so the error that follows names the expected place.
func Path() string {
	if p := os.Getenv(EnvVar); p != "" {
		return p
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, RelPath)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return RelPath
}
