package runtime

// SetORTModelHook lets tests see every model's bytes right before ONNX
// Runtime parses them; nil removes the hook.
func SetORTModelHook(f func(onnx []byte)) { ortModelHook = f }

// StripMetadataAbove is how many metadata entries ORT is still given.
const StripMetadataAbove = stripMetadataAbove
