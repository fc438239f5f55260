// Package pebblelog routes Pebble's log lines to log/slog, with one policy
// for Pebble's Fatalf shared by every Pebble DB of a node: the prediction
// log, the artifact store and the Raft store.
//
// # Fatalf
//
// Pebble calls Logger.Fatalf when it cannot go on: a commit it could not
// write or sync to the WAL ("pebble: fatal commit error"), a MANIFEST it
// could not write, corruption found while ingesting, a broken invariant.
// Its default logger then calls os.Exit(1) from wherever it is. Here
// Fatalf always logs at ERROR, with the store's name and directory, and
// then panics with a *Fatal:
//
//   - on a store's own commit path the store recovers that *Fatal (and only
//     that) into a sticky failure: the write is not acknowledged, no later
//     write is either, and the store's health check reports it, so the node
//     reports itself not ready instead of acknowledging writes it cannot
//     make (etcd's rule for a failed WAL save). Reads of what was committed
//     keep working, and the node keeps scoring: a prediction log whose disk
//     filled up must not take the scoring path down with it;
//   - anywhere else (Pebble's background goroutines: flushes, compactions,
//     MANIFEST rotation) nothing recovers it, and the process exits with a
//     non-zero status (2) and a stack trace, right after the ERROR line
//     that says which store failed and where.
//
// Exiting at once, as Pebble's default does, would turn a full disk under
// the prediction log into a scoring outage, and it would exit without a
// word in the node's log (Pebble's default writes to the standard log, not
// to the node's handler). Recovering every Fatalf would keep a DB whose
// background work is broken running with no one told.
package pebblelog
