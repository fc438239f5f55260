package oip

import (
	"github.com/modelgate/modelgate/internal/jsonw"
	"github.com/modelgate/modelgate/runtime"
)

// Platform is what model metadata says models run on.
const Platform = "onnxruntime_onnx"

// ExtensionBinaryTensorData is the name server metadata lists for the binary
// tensor data extension.
const ExtensionBinaryTensorData = "binary_tensor_data"

// AppendError appends the OIP error body {"error":"…"}.
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = jsonw.AppendString(dst, msg)
	return append(dst, '}')
}

// AppendServerMetadata appends the body of GET /v2:
// {"name":…,"version":…,"extensions":[…]}.
func AppendServerMetadata(dst []byte, name, version string, extensions []string) []byte {
	dst = append(dst, `{"name":`...)
	dst = jsonw.AppendString(dst, name)
	dst = append(dst, `,"version":`...)
	dst = jsonw.AppendString(dst, version)
	dst = append(dst, `,"extensions":`...)
	dst = appendStrings(dst, extensions)
	return append(dst, '}')
}

// AppendModelMetadata appends the body of GET /v2/models/{m}[/versions/{v}]:
// {"name","versions":[…],"platform","inputs":[{"name","datatype","shape"}],
// "outputs":[…]}, with -1 for a dynamic dimension.
func AppendModelMetadata(dst []byte, name string, versions []string, sig *runtime.Signature) []byte {
	dst = append(dst, `{"name":`...)
	dst = jsonw.AppendString(dst, name)
	dst = append(dst, `,"versions":`...)
	dst = appendStrings(dst, versions)
	dst = append(dst, `,"platform":"`+Platform+`","inputs":`...)
	dst = appendSpecs(dst, sig.Inputs)
	dst = append(dst, `,"outputs":`...)
	dst = appendSpecs(dst, sig.Outputs)
	return append(dst, '}')
}

// AppendReady appends the body of a health or readiness answer:
// {"ready":true} or, with a model name, {"name":…,"ready":…}. The status
// code is the answer; the body is for people.
func AppendReady(dst []byte, name string, ready bool) []byte {
	dst = append(dst, '{')
	if name != "" {
		dst = append(dst, `"name":`...)
		dst = jsonw.AppendString(dst, name)
		dst = append(dst, ',')
	}
	if ready {
		return append(dst, `"ready":true}`...)
	}
	return append(dst, `"ready":false}`...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonw.AppendString(dst, s)
	}
	return append(dst, ']')
}

func appendSpecs(dst []byte, specs []runtime.TensorSpec) []byte {
	dst = append(dst, '[')
	for i := range specs {
		s := &specs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = jsonw.AppendString(dst, s.Name)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, s.DataType.String()...)
		dst = append(dst, `","shape":`...)
		dst = appendShape(dst, s.Shape)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}
