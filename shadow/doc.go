// Package shadow measures versions that do not answer: it mirrors traffic
// to shadow versions, compares them with the champion, and evaluates every
// version online from labels. It imports runtime only; the gateway wires it
// (routing table → shadow targets, outcomes → prediction log with role
// "shadow", labels → Evaluator).
//
// # Mirror
//
// A Mirror serves one model. After the champion's answer is decided, the
// scoring path calls Enqueue with the request id, inputs, champion outputs
// and the shadow targets from the routing table. Enqueue never blocks and,
// in steady state, never allocates: it takes one of QueueSize pooled
// copies, copies the caller's buffers into it (the caller may reuse them at
// once) and queues it. When no copy is free the answer is skipped and
// counted (Stats.Dropped), so memory is bounded by QueueSize copies however
// slow a shadow is. A sample rate picks which answers are mirrored by a
// seedless hash of the request id, so every node picks alike.
//
// Workers run each copy on every shadow's runtime slot (taking a slot
// reference per run, so a shadow retired meanwhile is skipped, never run
// closed) and hand each Outcome to the Observer. They run on OS threads of
// their own at nice 10, as the prediction log's background threads do: on
// a busy node the kernel gives the scoring threads the cores first. A
// shadow's error or panic, or a panicking observer, is recovered and
// counted; nothing reaches the caller.
//
// Coverage is Stats.Mirrored / Stats.Served.
//
// # Statistics
//
// Comparison (one champion/shadow pair, one window) and Evaluation (one
// version, one window) are sums: Merge adds two of them, so windows merge
// into horizons and nodes' exports merge into a cluster's. Export/Import
// carry them as versioned bytes ("MGSC"/"MGSE", version 1) that Import
// checks completely (lengths, indices, counts that must agree): an export
// is another node's message, not trusted memory.
//
// Comparisons and Evaluator keep those per pair or version in a ring of
// tumbling windows aligned on multiples of the window length since the
// Unix epoch (so node A's window n is node B's window n), on an injected
// clock. A comparison counts in the window of the champion's answer; an
// evaluation in the window of the prediction's time, so labels that arrive
// late land beside their predictions. Samples older than the ring are
// counted (Late) and dropped; a time ahead of the clock counts in the
// current window.
//
// A binary decision is positive when the score is at or above the
// threshold. The Evaluator does not deduplicate labels: the prediction log
// stores them by request id and the caller hands each (prediction, label)
// pair once. Confidence intervals are described on Metrics.
package shadow
