package runtime

import (
	"fmt"
	"os"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// RequiredVersion is the ONNX Runtime release line modelgate is built and
// tested against (onnxruntime_go v1.27.0 speaks its C API).
const RequiredVersion = "1.30."

var (
	envMu  sync.Mutex
	envLib string
)

// Init loads ONNX Runtime's shared library from libPath and creates the one
// ORT environment of this process. Calling it again with the same path is a
// no-op; with another path it is an error, because ORT cannot be reloaded.
//
// The errors name the fix: a missing library is fetched by `make ort`.
func Init(libPath string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envLib != "" {
		if envLib == libPath {
			return nil
		}
		return fmt.Errorf("runtime: ONNX Runtime already loaded from %s, cannot load %s as well", envLib, libPath)
	}
	if _, err := os.Stat(libPath); err != nil {
		return fmt.Errorf("runtime: ONNX Runtime library not found at %s: run `make ort` to fetch it, or point --ort-lib / MODELGATE_ORT_LIB at libonnxruntime.so.1 %s", libPath, RequiredVersion+"x")
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("runtime: cannot load ONNX Runtime from %s (modelgate needs %sx; `make ort` fetches it): %w", libPath, RequiredVersion, err)
	}
	if v := ort.GetVersion(); !strings.HasPrefix(v, RequiredVersion) {
		ort.DestroyEnvironment()
		return fmt.Errorf("runtime: %s is ONNX Runtime %s, modelgate needs %sx: run `make ort` and use the library it fetches", libPath, v, RequiredVersion)
	}
	envLib = libPath
	return nil
}

// Version returns the loaded ONNX Runtime's version, or "" before Init.
func Version() string {
	envMu.Lock()
	defer envMu.Unlock()
	if envLib == "" {
		return ""
	}
	return ort.GetVersion()
}

func initialized() bool {
	envMu.Lock()
	defer envMu.Unlock()
	return envLib != ""
}
