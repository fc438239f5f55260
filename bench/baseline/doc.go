// Package baseline holds the two reference servers the bench harness runs
// side by side with the gateway, on the same model and the same request
// bodies, so that every gateway figure can be stated as a ratio measured in
// the same run on the same (noisy) machine.
//
//   - Bare is the practical limit: valyala/fasthttp, the gateway's pooled
//     Open Inference Protocol decoder and encoder (package gateway/oip, shared
//     wire code), and a small pool of ONNX Runtime AdvancedSessions, one per
//     core, each bound once to its own preallocated [1,F] input and [1,K]
//     output tensors. A request is decoded, its F floats are copied into an
//     idle session's input, the session runs, and the response is appended
//     into a pooled buffer. There is no routing, no metrics, no logging and
//     no MLOps, and only batch-1 requests are accepted. A steady-state
//     request allocates nothing in Go.
//   - NetHTTP is the server a Go team would write in an afternoon: net/http,
//     encoding/json into structs, a pool of DynamicAdvancedSessions (one per
//     core) and input and output tensors created with ort.NewTensor and
//     destroyed on every request; the response is encoded with
//     encoding/json. It accepts any number of rows, with flat "data".
//
// Both serve models of the demo's shape: one FP32 input [N,F] and one FP32
// output [N,K] (the demo fraud model: "features" [N,30] → "probability"
// [N,1]). Both answer
//
//	POST /v2/models/{model}[/versions/{version}]/infer
//	GET  /v2/health/ready
//	GET  /v2/health/live
//
// with the gateway's JSON shape: {"model_name","model_version":"baseline",
// "id","outputs":[{"name","datatype","shape","data"}]}, the request's id
// echoed (or generated when it has none), and {"error":"…"} with status 400
// for a request they cannot serve.
//
// Each baseline is meant to run in its own process (`modelgate baseline
// bare|nethttp`), so that it has its own ONNX Runtime environment; in one
// process (tests) they share the environment runtime.Init creates.
package baseline
