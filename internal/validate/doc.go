// Package validate is the gate a model version passes before it may take
// traffic: static checks on the ONNX bytes, then a load, a smoke run, golden
// pairs and a latency budget in ONNX Runtime — in a child process.
//
// Two halves:
//
//   - Static checks the bytes without ONNX Runtime: size, protobuf parse,
//     ir_version and opset, no external data files, and the declared size of
//     every stored tensor (a protobuf may declare a 100 GB initializer in a
//     few bytes). Its memory use is bounded by a small multiple of the input
//     (Limits.MaxModelBytes), so it is safe on untrusted bytes.
//   - Run runs the whole gate in a child process, `modelgate validate
//     --stdin`, with a timeout and a memory limit (RLIMIT_AS, set by the child
//     on itself before ONNX Runtime is loaded). ONNX Runtime has crashed,
//     read out of bounds and allocated without bound on crafted models; in
//     the child that costs a failed validation, not the serving process. A
//     child that is killed, crashes, runs out of memory or overruns its time
//     gives a Report that did not pass, with a reason naming what happened.
//
// Local is the in-process half the child runs (static checks, then ONNX
// Runtime); nothing but `modelgate validate` should call it on untrusted
// bytes. Its smoke run uses the golden pairs' inputs when there are any;
// without, it runs zeros, and an ordinary ONNX Runtime error on those is a
// warning (Report.Warnings), not a refusal: zeros are no valid input for a
// model whose inputs are shapes, scales, divisors, steps or axes. Running
// out of memory still refuses.
//
// A Report is the evidence the registry's audit log keeps: every check with
// its verdict, the signature, latency percentiles and timings, as JSON.
//
// Test hooks: the child honours two environment variables so tests can
// simulate what ONNX Runtime may do to it (see EnvTestCrash, EnvTestSleep).
// They have no other use.
package validate
