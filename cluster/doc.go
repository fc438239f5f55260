// Package cluster replicates modelgate's model registry with Raft
// (hashicorp/raft): every change to models, versions, aliases and policies is
// a registry.Command, committed to the Raft log and applied, in log order, to
// a registry.State on every node. A node bootstraps a one-voter cluster of
// itself on first start, or joins an existing one, and comes back from its
// data dir with the same state (see "Membership and forwarding").
//
// # Parts
//
//	Store   the Raft LogStore and StableStore on a Pebble DB of its own (store.go)
//	FSM     the registry as a raft.FSM: Apply, Snapshot, Restore; Read, Clone, Changed (fsm.go)
//	Node    raft + Store + file snapshots + TCP transport + FSM: Open, Apply, Close (node.go)
//	Members Join, Remove, Members, the member table, AppliedIndex, CatchUp (members.go)
//	TLS     mutual TLS on the Raft transport: LoadMutualTLS, the stream layer (tls.go)
//	Fault   a switch that cuts a node's Raft traffic, for partition tests on real TCP (fault.go)
//	Config  a node's configuration: DefaultConfig, Validate (config.go)
//
// On disk, under Config.DataDir:
//
//	raft/log/          the Pebble DB: log entries and Raft's term and vote
//	raft/snapshots/    raft.FileSnapshotStore, the newest SnapshotsRetained (2) kept
//
// # Durability contract
//
// Node.Apply returns a Result only after the command is in the Raft log of a
// quorum of voters — on a single node, its own — and applied to this node's
// registry. Every write to the log and stable store is one Pebble batch
// committed with pebble.Sync (the WAL is fsynced before the call returns),
// and StoreLogs writes all its entries in one batch: after a crash either all
// of them are there or none. So an acknowledged write survives a process
// crash (TestStoreSIGKILL kills a writing child at random moments and finds
// every acknowledged entry, contiguously) and a power failure
// (TestStorePowerLoss checks crash clones of a filesystem that keep only what
// was synced, and a random part of the rest).
//
// A write the store cannot commit or sync is never acknowledged, and neither
// is any later one: the store turns failed (ErrStoreFailed, Node.Healthy),
// Raft sees every write fail (a leader steps down, a follower rejects
// entries, no vote is granted), and the node keeps serving reads and its
// routing table until an operator restarts it. Pebble's commit pipeline
// reports such failures through Logger.Fatalf, which this package turns into
// the sticky error instead of Pebble's default exit; a fatal error on one of
// Pebble's background goroutines (a MANIFEST that cannot be written) still
// stops the process.
//
// On restart Raft restores the newest snapshot into the FSM at once (a
// snapshot's Restore replaces the whole registry, never merges). Before
// that, Open has replayed the log entries the node knows were committed
// (the commit index the Store persists with the entries that follow it)
// into a new snapshot (replay.go), so a node restarted with no leader
// reachable serves what it had. The entries after that are applied as
// soon as the node has committed an entry of its new term — on a single
// node, right after it elects itself — or its leader tells it the commit
// index. Barrier waits for that; the gateway's reconciler simply watches
// Changed.
// Snapshots are taken every SnapshotThreshold entries (checked every
// SnapshotInterval) or on Node.Snapshot; the log is then compacted to
// TrailingLogs entries behind the snapshot.
//
// # What Apply's errors mean for a client
//
// Apply validates the command first (registry.Command.Validate): a bad one is
// refused with the registry's error before Raft sees it. After that:
//
//	registry error (*TransitionError, *FieldError, ErrModelNotFound …)
//	    the command was committed and refused, identically on every node; the
//	    state did not change. 4xx as the registry package maps it.
//	*UnavailableError, errors.Is ErrUnavailable: 503
//	    ErrNotLeader   another node leads (Leader, LeaderID); nothing applied
//	    ErrNoLeader    no leader within the deadline; nothing applied
//	    ErrTimeout, ErrLeadershipLost, ErrClosed with OutcomeUnknown set:
//	                   the command reached Raft and may be committed later —
//	                   retry with the same idempotency key
//
// Every Apply ends by its context's deadline or Config.ApplyTimeout,
// whichever is earlier: a lost quorum fails the call, it does not hang it.
// The retry rule works because the registry remembers the idempotency keys
// of the last registry.DefaultIdempotencyWindow applied commands (in the
// replicated state and its snapshots): a command that did commit is not
// applied twice, its retry returns the first Result with Replayed set
// (TestThreeNodes: a write lost with the quorum is retried after the quorum
// returns, and comes back Replayed). A key reused for a different command is
// the registry's *IdempotencyError (409).
//
// A Result comes from the proposing node's FSM. Reads (FSM.Read, Clone) are
// local: on the leader after Barrier they reflect every committed write; on
// a follower they may lag. LastSeq identifies a state; Changed wakes
// watchers whenever it changes.
//
// # Why Pebble and not raft-boltdb
//
// No maintained Pebble LogStore exists; hashicorp/raft-boltdb/v2 does. This
// package writes its own, about 300 lines, because:
//
//   - one storage engine for the project: the prediction log (predlog) is
//     already on Pebble, so the raft store adds no dependency, while
//     raft-boltdb/v2 brings bbolt, armon/go-metrics and (for MigrateToV2) the
//     original boltdb/bolt;
//   - synced, atomic batches are Pebble's native write (StoreLogs is one
//     batch, fsynced once), and DeleteRange, which Raft calls after every
//     snapshot, is one range tombstone that compactions reclaim; a bolt file
//     only grows, and its freelist grows with the deleted log pages;
//   - pure Go, no CGO, like the rest of the module apart from ONNX Runtime;
//   - the risk of a hand-written store is covered by tests of every
//     expectation Raft has of a store (read from how api.go, raft.go,
//     replication.go and log.go call it: ErrLogNotFound returned itself, the
//     StableStore's missing key as the text "not found", 0 for an empty log,
//     an inclusive DeleteRange, gaps allowed after a snapshot install),
//     raft-boltdb's own test cases, the SIGKILL and power-loss loops above,
//     and fault injection on the WAL (pebble's vfs/errorfs).
//
// Log entries are stored in a compact binary form of their own (logcodec.go:
// every raft.Log field, AppendedAt and Extensions included, one encoding per
// entry), keyed by the big-endian index.
//
// # Snapshots
//
// A snapshot is the line "modelgate/cluster-snapshot/1\n" followed by one
// registry snapshot (registry.State.MarshalSnapshot). FSM.Snapshot takes a
// Clone of the state (raft applies nothing while it runs); Persist serialises
// it outside any lock while commands go on. The envelope leaves room for
// state that later lives beside the registry in the same FSM (artifact
// holders, node readiness); a snapshot with another header is refused
// (ErrCorruptSnapshot) and Raft falls back to an older one.
//
// # A lost Raft directory
//
// Bootstrapping writes DataDir/cluster.json (MarkerFile), outside raft/;
// a node with Raft state and no marker (a data dir from before markers)
// writes it at start. A node that finds the marker but no Raft state (raft/
// or its log deleted, a botched restore) refuses to start with
// ErrLostRaftState, naming what is missing and what the dir still holds,
// rather than bootstrap a new, empty cluster that reports ready and serves
// nothing. Config.ForceBootstrap (serve --force-bootstrap) starts the new
// cluster anyway, with a WARN.
//
// A torn tail is the smaller loss: Pebble replays its newest WAL up to the
// first record it cannot read and drops the rest without an error.
// OpenStore reads the WAL first, the way that replay does, and reports a
// torn last record at WARN with what it held (raft log entries i-j, a term
// or vote, a log truncation) and where the log now ends (torn.go).
//
// # Determinism and upgrades
//
// Every node must apply the same entries to the same state the same way. The
// registry is deterministic (time travels in the command); a command it
// cannot decode (an unknown wire version) is refused on every node alike;
// a panic inside the registry (a bug) is recovered into a refusal on every
// node rather than crash-looping them all on the same entry. Upgrade every
// node before proposing a command of a newer wire version.
//
// # Membership and forwarding (members.go)
//
// A node bootstraps a one-voter cluster (Config.Bootstrap), or starts
// empty and is added by the leader: Join (AddVoter, or AddNonvoter for a
// member that receives the log but never votes), Remove (RemoveServer;
// the leader does not remove itself). Raft's configuration is the truth
// about members and suffrage. What it does not hold — each member's admin
// address, where followers forward writes — is the member table: member
// records are Raft log entries tagged by their Extensions
// (memberExtension), applied by the FSM beside the registry (never
// touching its LastSeq or audit log) and kept in snapshots (format 2: the
// table as one JSON line after the header; a cluster without records
// writes format 1 as before). Every leader records its own address
// (AdvertiseAdmin), so a failover or a restart on a new port is followed.
//
// Forwarding itself is the gateway's (api_cluster.go): it asks a Node who
// leads and where (LeaderAdmin), waits until this node has applied what
// the leader reported (AppliedIndex, WaitApplied: the index of the last
// entry the FSM applied, not raft's count of entries handed to it), and
// makes ?consistent=true reads linearizable (LinearizableRead:
// VerifyLeader, then Barrier). CatchUp is what a starting node waits for
// before it reads the registry for what to serve.
//
// The transport is plain TCP unless Config.TLS makes it mutual TLS
// (tls.go: both ends verify the other's certificate against the cluster's
// CA). Not built yet: TLS on the admin HTTP that forwarding uses, and
// artifact distribution between nodes.
//
// # Limits
//
//   - registry.MaxCommandSize (16 MiB) is far above Raft's
//     SuggestedMaxDataSize (512 KiB): a command carrying a large drift
//     profile delays heartbeats while it replicates.
//   - BindAddr with port 0 gives a new address on every start, which only a
//     single node tolerates.
//   - Apply waits for the commit in a goroutine that lives until Raft
//     settles the entry (commit, lost leadership or shutdown), even when
//     Apply itself returned at its deadline.
package cluster
