// Package routing decides which loaded version of a model answers a request.
//
// A model has a champion and may have a canary that answers a weight of its
// traffic, from 0.01% to 100% in steps of one basis point. The split is
// sticky: it hashes a routing key (the request's parameters.routing_key,
// else its id) with XXH64 and no seed, so the same key lands on the same
// version on every node, across restarts and releases, for as long as the
// weight holds. A key goes to the canary when its bucket, the hash modulo
// 10,000, is below the weight in basis points; raising the weight therefore
// only moves keys from the champion to the canary, never back, and lowering
// it only moves them back.
//
// Invariants:
//   - Bucket is a pure function of the key's bytes: it must never change
//     between releases, or every sticky assignment in a running rollout
//     would be reshuffled (TestBucketIsStable pins it).
//   - Nothing here allocates or locks: it runs on every scoring request.
package routing
