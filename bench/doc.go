// Package bench is modelgate's load harness: the client side of every
// performance figure the project publishes.
//
// It drives a scoring endpoint (the Open Inference Protocol infer route of a
// node, a cluster, or a baseline server) over keep-alive connections with
// valyala/fasthttp's client, in one of two modes per phase:
//
//   - closed loop: N connections, each sending its next request as soon as
//     the previous one is answered (maximum throughput);
//   - open loop: a fixed arrival rate, uniform or Poisson. Every request's
//     latency is measured from its intended send time, not from when the
//     harness managed to send it, so a stalled server cannot hide its stall
//     by slowing the harness down (no coordinated omission). Sends that
//     started later than Config.LateThreshold after their intended time are
//     counted as late: a report with many late sends says the harness (or
//     the connection pool) could not keep the rate.
//
// Latencies go into HdrHistograms (1µs–60s, 3 significant digits) per
// phase and per answering model version (read from the response's
// "model_version" with a byte search, not a JSON decode); errors are counted
// by kind (connect, timeout, http_<status>, other).
//
// Request bodies come from the synthetic card-transaction generator
// (internal/fraud): a ring of distinct bodies is generated before each run,
// so generation is never on the send path, and a second ring from a drifted
// generator is used by phases (or actions) that switch drift on. Each body
// carries a routing key (an account id) so canary splits stay sticky, and a
// request id that is unique per request (patched in place into a copy of the
// body), which delayed labels refer to.
//
// A Scenario (a small JSON file, see LoadScenario) lists phases and actions
// at given times: register a version, promote, roll back, set a canary
// weight through the admin API, or kill, start and restart node processes
// the harness launched itself.
//
// Run returns a Report, which writes itself as a text table, report.json
// and a self-contained report.html with inline SVG plots.
//
// The package never imports server packages (gateway, runtime, registry,
// cluster): it speaks only the wire protocols.
package bench
