// Package registry is modelgate's model registry: models, their immutable
// versions with lineage, the champion and canary aliases, per-model
// policies, and an append-only audit log — as a pure, deterministic state
// machine.
//
// Commands in, new state out: State.Apply takes a Command and either applies
// it whole or refuses it and changes nothing. There is no I/O, no clock (the
// time travels in the command), no goroutine and no randomness, so the
// cluster package can replicate a State with Raft (the FSM's Apply decodes a
// log entry with DecodeCommand and calls State.Apply; Snapshot is
// MarshalSnapshot; Restore is RestoreSnapshot, which replaces the state) and
// tests can run it without a cluster. The same commands in the same order
// give byte-identical snapshots.
//
// # Versions and stages
//
// A model's versions are numbered 1, 2, 3 … in registration order; numbers
// are never reused, even after a delete. A version is immutable except for
// its stage, its validation record, a pending approval, and its signature
// (which validation may supply once). Stages:
//
//	registered   artifact known, validation not done
//	validated    passed validation, takes no traffic
//	shadow       receives mirrored traffic; answers are compared, never returned
//	canary       answers a weighted share (0–100%) of real traffic
//	champion     answers the rest
//	retired      takes no traffic (a former champion, or parked)
//	failed       failed validation — terminal: it can only be deleted
//	rolled_back  was the champion and was rolled back
//
// The legal moves (the table in transitions.go; every cell is tested):
//
//	from \ to     validated failed shadow canary champion  retired rolled_back delete
//	registered    V         V      .      .      .         .       .           D
//	validated     .         .      S      S      P, A      S       .           D
//	shadow        .         .      .      S      P, R'     S       .           .
//	canary        .         .      S      S(w)   P, R'     S       .           .
//	champion      .         .      .      .      .         P'      R           .
//	retired       .         .      S      S      P, R'     .       .           D
//	rolled_back   .         .      S*     S*     P*        S*      .           D
//	failed        .         .      .      .      .         .       .           D
//
//	V   set_validation (passed → validated, failed → failed)
//	A   automatic: a version that passes validation while the model has no
//	    champion becomes champion in the same command, whatever the policy
//	S   set_stage; S(w) changes the canary's weight (it must change)
//	P   promote; P' the champion is retired when another version is promoted,
//	    and goes onto the rollback stack
//	R   rollback: the champion becomes rolled_back …
//	R'  … and the previous champion (top of the stack) returns, from
//	    whatever stage it was moved to since
//	*   a person only: an automatic (Auto) move out of rolled_back is refused
//	D   delete_version
//
// Further rules: a model has at most one canary (making a second is refused
// until the first moves on); rollback needs a previous champion; approve
// and reject need a move waiting for approval; a promotion or a new canary
// must accept what the champion's clients send and give what they read
// (CheckCompatible: same input names and datatypes, every shape the
// champion accepts, the same outputs) unless forced — refused with a
// *SignatureError otherwise, and recorded with what was forced past. A refused move returns a
// *TransitionError whose message says why and what to do first, e.g.
//
//	registry: cannot delete fraud v3: it is the champion; promote another version first
//
// # Invariants
//
//   - Before any version of a model passes validation the model has no
//     champion; from then on it has exactly one, always: the champion cannot
//     be deleted, retired or moved directly, only replaced by a promotion or
//     a rollback (which always installs another). The champion alias points
//     at the one version in stage champion, the canary alias at the one in
//     stage canary (if any), and the canary weight is in 0–100 (0 without a
//     canary).
//   - The rollback stack holds only existing, distinct, non-champion
//     versions; deleting a version takes it off the stack.
//   - The audit log only grows at its end; records are numbered 1, 2, 3 …
//     without gaps by a counter of their own (LastSeq). trim_audit removes
//     the oldest records from the state (nodes archive them) and never
//     renumbers the rest: the state holds FirstRetainedSeq … LastSeq.
//     Every successful command appends at least one record; a refused one
//     appends none. (A failed validation is a successful command: it records
//     the failure and its evidence.)
//   - RestoreSnapshot checks these and refuses a snapshot that breaks them.
//
// # Approval
//
// Moves proposed by the lifecycle controller carry Auto. If the model's
// policy is in manual mode, or the gate of the step (shadow, canary,
// champion) has RequireApproval, such a move is not made: the version gets
// a PendingTransition and the audit log an approval_requested record. An
// approve command then makes the move (checked again against the state of
// that moment); reject drops it. A person's command (Auto false) is the
// approval and happens at once; it also clears a pending request on that
// version. Rollback never waits.
//
// # Idempotency
//
// Every command carries an idempotency key. The state remembers the last
// DefaultIdempotencyWindow keys of applied commands, with their Result, in
// a ring that is part of the snapshot, so all replicas agree. A command
// whose key is remembered is not applied again: Apply returns the first
// Result (Replayed set). The same key with a different command (op, actor or
// arguments) is refused with an *IdempotencyError. This is what makes a
// client retry after an unknown Raft outcome (a timeout, lost leadership)
// safe: it never registers a version twice. A refused command does not use
// its key.
//
// # Wire format (version 4)
//
// A command is one JSON object:
//
//	{"v":2,"op":"register","time":"2025-06-01T12:00:00Z","actor":"ci",
//	 "idempotency_key":"b7e1…","args":{"model":"fraud","digest":"…","size":1234,…}}
//
// v is the wire version (1 to 4; anything else is refused with
// ErrUnsupportedVersion); op is one of the Op constants (others:
// ErrUnknownOp); time is RFC 3339 and becomes UTC; args is the op's *Args
// type, its fields as their json tags spell them. Unknown fields anywhere
// are refused, not ignored: a replica must never apply less than the command
// said. A change that alters what a command means (a new field with a
// non-zero effect, a new DefaultPolicy, a new rule) needs a new wire
// version, with older commands still applied as before, because Raft
// replays old entries. Version 2 added the signature check on promote and
// canary moves and their "force" field: a v1 command is applied without the
// check, refuses "force" as an unknown field, and re-encodes as v1.
// Version 3 added set_reference and trim_audit (refused in an older
// envelope); a drift_reference record_alert of v1 or v2, whose evidence was
// the bootstrapped profile, still sets the version's BootstrappedReference
// when replayed, while a v3 one is only a record. Version 4 added artifact
// distribution: report_ready (a node's verdict on a version's bytes),
// register's "holder" and the policy's "distribution" section, each refused
// in an older envelope.
//
// Snapshots are JSON too ({"format":2,"last_seq":…,"models":[…],
// "audit":[…],"idempotency_limit":…,"idempotency":[…]}), read back only by
// RestoreSnapshot, which also reads format 1 (no last_seq: the whole log
// from 1).
//
// # Reading
//
// Model, Models, Version, Champion, Canary, Policy, PendingApprovals and
// Audit return deep copies. RoutingView tells a node which versions to load
// and how to route each model (champion, canary with its weight, shadows);
// LastSeq identifies the state, so a reconciler can tell when nothing
// changed.
//
// A State is not safe for concurrent use: its owner serialises Apply and
// reads (or reads a Clone).
package registry
