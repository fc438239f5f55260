// Package runtime runs ONNX models through ONNX Runtime for the scoring path.
//
// One ORT environment per process (Init). A Model is one loaded version: its
// Signature, introspected from the file, and a pool of sessions, each owned
// by one call at a time (onnxruntime_go's sessions are not safe for
// concurrent use). Each session keeps, per input shape, input and output
// tensors backed by Go memory and bound through an IoBinding, so the steady
// state of a call is a copy in, one Run and a copy out, with no allocation.
// Where an output's shape turns out to depend on the input values (NonZero,
// TopK with a k input, shape-driven Reshape, …), ORT refuses the bound
// tensor; that call is answered through the general path, where ORT
// allocates the outputs, and so are the later calls of those input shapes.
//
// The model's metadata_props are read by the runtime itself, not through
// ORT, whose parse is quadratic in their number.
//
// Tensors travel as Tensor: little-endian bytes for numeric types (what ORT
// reads), strings for BYTES. The dynamic batcher (Config.MaxBatch > 1)
// stacks calls along the first dimension; it is off by default because it
// trades batch-1 latency for throughput.
//
// A Slot wraps a Model for hot swap: a version is loaded and warmed before
// routing points at it, and the swapped-out slot closes only after its last
// in-flight call, by refcount. Nothing here knows of HTTP or Raft.
package runtime
