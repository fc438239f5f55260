// Package auditarchive is a node's archive of registry audit records that
// audit retention (registry trim_audit) removed from the replicated state:
// a small Pebble DB of its own in <data-dir>/audit-archive, one key per
// record by its sequence number.
//
// Every node archives the records a trim removes before it applies the
// trim (cluster.FSM does, under its write lock), so a node holds the whole
// history from the point it joined: the state has the records since the
// last trim, the archive those before. A node restored from a Raft
// snapshot has only what the snapshot holds plus what its archive already
// had: the records trimmed before the snapshot and never applied here are
// on the nodes that applied them, not on this one.
//
// Put is idempotent (a record's key is its Seq and records never change),
// so a trim replayed from the Raft log after a restart archives the same
// records again harmlessly.
package auditarchive
