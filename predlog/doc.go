// Package predlog is the prediction log: one record per prediction served or
// shadowed, and the ground-truth labels that arrive later, in a Pebble DB of
// their own. It answers three questions: what did we predict for request X
// (Get), what did version V predict between two times (Scan), and what are
// the labelled rows a retraining job has not seen yet (Export). It imports
// nothing of modelgate but small helpers in internal/ (JSON strings, 16-bit
// floats, Pebble's logger, thread priority); the gateway feeds it from the
// scoring path.
//
// # Records
//
// A Record is a request id, model, version, role (champion, canary,
// shadow), request time, node, latency, and the input and output tensors in
// the runtime's layout (numeric elements little-endian in Data, BYTES
// elements in Strings). Its value is a compact binary encoding (codec.go):
// what repeats from record to record (role, node, tensor names, types and
// shapes) comes first, in one run, then the time, id, latency and raw tensor
// bytes. A demo record (30 FP32 features, one FP32 output, a ~20-byte id)
// encodes to 194 bytes.
//
// # Key layout
//
// Every key starts with a one-byte tag. Model names hold no NUL byte, so
// "model 0x00" is an unambiguous prefix. Stamps are 8-byte big-endian.
//
//	p model 0x00 last-stamp      -> block of records (the primary key)
//	l model 0x00 request-id      -> label: stamp, time, value
//	L model 0x00 stamp           -> request id       (labels in arrival order)
//	x first-stamp level hash6    -> chunk of an id index run
//	x first-stamp level ff×7     -> the run's descriptor
//
// A stamp is the commit time in unix nanoseconds, made unique and strictly
// increasing within the log: the single committer takes max(now, last+1)
// for each record, and Open recovers the last stamp from the keys, so stamps
// keep increasing across restarts even if the clock steps back. The stamp
// trails the record's own Time by the time it waited in the ring.
//
// Predictions are stored in blocks (block.go): the records of one model that
// one Pebble batch commits, in the order served, up to 32 KiB, under consecutive
// stamps. The key holds the block's last stamp; its value is the record
// count, then per record its version (1-byte length, bytes) and its value,
// as the length of the prefix it shares with the previous record's value
// (uvarint; 0 for the first) and the rest (uvarint length, bytes), the
// records compressed with S2 when that saves an eighth (block.go). A block
// of n records under last stamp s holds stamps s-n+1 to s, and a model's
// blocks never overlap, so the block holding stamp t is the first at or
// after key "p model 0x00 t": time-range scans and exports from a cursor
// are range scans that skip into the first block. A version's scan skips
// other versions' records without decoding them (a model serves a handful
// of versions at a time). One key per block instead of one per record is
// most of the committer's and Pebble's work saved (see Measurements).
//
// # Lookup by request id
//
// The id index (index.go) maps 6 bytes of the id's FNV-1a hash to the
// records' stamps and models: several records per id (a request and its
// shadow copies), and collisions that cost an extra read, never a wrong
// answer, because lookups compare the stored id. It never goes through the
// memtable. The committer hands each committed record's entry to the index
// in memory; every IndexRunSize entries (default 65,536) the indexer
// goroutine sorts them by hash and writes them as a run: an sstable of
// ~4 KiB chunks (hash deltas, stamp offsets and model numbers as uvarints,
// about 10 bytes an entry) under keys of their own, which Pebble ingests
// straight into the bottom level. A new run is written uncompressed (it
// lives only until seven more are sealed); merged runs are compressed. Eight runs of a
// level are merged into one of the next, ingested while the eight are
// excised in the same atomic step, so a log of N records has at most about
// 7·log8(N/IndexRunSize) runs. A lookup scans the entries in memory and
// reads one chunk per run (a seek each); an iterator made under the lock the
// indexer publishes under sees exactly the runs it lists.
//
// Why not a key per record, as before: a randomly placed key per record made
// Pebble insert it into the memtable, write it to the WAL, flush it and
// compact it, and, worse, made every flushed table span the whole keyspace,
// so the tables of blocks overlapped and were rewritten by compactions too.
// Now the memtable holds blocks (and labels) only, flushed tables move down
// without being rewritten, and the index costs a sort and one sequential
// write per entry, plus one rewrite per level it is merged into.
//
// The index in memory is not in the WAL: at Open, the entries of every
// record stamped after the last run on disk are rebuilt from the records
// (at most two runs' worth after a crash, read in well under a second).
// The same rebuild indexes a log written by a version with the per-record
// index, whose keys ("i" hash stamp) Open deletes. Retention deletes the
// runs whose records are all gone (an excise); entries of removed records
// in the runs that remain cost a lookup a wasted seek, and merges drop
// them.

// # Group commit and the durability contract
//
// Append encodes the record on the caller's goroutine straight into the
// ring (a bounded buffer of at most RingSize records and RingBytes bytes),
// under a short mutex, and returns: it never waits for I/O. The ring is cut
// into 8 shards, each with an eighth of both bounds (when that is still
// 1,024 records and a record of 1 MiB; small rings stay whole), and a record
// goes to the shard its id hashes to, so two cores scoring rarely contend
// for one mutex. A record larger than a shard's share (a batch request of
// megabytes) goes to shard 0, which takes one such record per group on top
// of its share. When its shard is full a record is dropped and counted
// (Stats.Dropped; the gateway exports it as a metric). A record over
// MaxRecordBytes (16 MiB by default) is dropped and counted too
// (Stats.Oversize, a *TooLargeError to the caller), never lost silently. The committer
// swaps every shard for an empty one, puts each model's records back in the
// order they were served (by their Time; a request and its shadows share an
// id, so a shard, and keep their order), writes them as Pebble batches (a
// block key per model and up to 32 KiB of records) and commits them;
// whatever accumulates meanwhile is the next group, so batches grow with the
// load. While records keep coming, async groups start at most every 10 ms
// (commitInterval), so each commit carries more records; a half-full ring
// or Close ends that wait at once. A durable record wakes a second
// committer, which runs at the process's priority (see Background
// priority) and commits whatever the ring holds at once; the two take turns
// under one mutex, so there is still a single writer.
//
// Async (Append): groups are committed with pebble.NoSync, and the WAL is
// fsynced at most SyncInterval after the first unsynced commit (by the next
// commit, or an empty synced write if the log went idle). What a nil error
// from Append does not protect against:
//
//   - a process crash (SIGKILL, panic, OOM kill) loses the records still in
//     the ring and in the group being committed (at most RingSize plus one
//     group), and the committed records whose WAL bytes Pebble had not yet
//     handed to the OS: a NoSync commit returns once the batch is in Pebble's
//     in-memory WAL buffer, which a background goroutine writes out
//     (usually within a millisecond or two);
//   - an OS crash or power loss loses, in addition, every record committed
//     since the last WAL fsync: at most SyncInterval (default 100 ms) plus
//     the time one commit takes.
//
// Durable (AppendDurable, chosen per call, so per model by the gateway's
// policy): the call waits for room instead of dropping, and returns only
// after the group holding the record is committed with pebble.Sync (an
// fsync of the WAL). A nil error means the record survives a process or OS
// crash (the crash test SIGKILLs a child mid-stream and finds every
// acknowledged id). Async records in the same group ride along.
//
// A failed commit or sync (Pebble returns an error, panics, or calls
// Logger.Fatalf, which it does when its WAL cannot be written; Config.Logger
// hears it at ERROR, see internal/pebblelog) makes the log
// unhealthy for good: the durable appenders of that group get the error, and
// from then on every write is refused with it and Healthy returns it, so the
// node reports itself not ready instead of acknowledging writes it cannot
// make (etcd treats a failed WAL save the same way). Reopening the log is
// the only way back. A Fatalf on one of Pebble's own background goroutines
// (a MANIFEST it cannot write) still ends the process, as Pebble intends.
//
// # Background priority
//
// The committer and the indexer each run on an OS thread of their own at
// nice BackgroundNice (default 10; Linux). Scoring and logging share the
// cores, and at equal priority the log's bursts of work (a group commit, a
// run sorted and written) delay scoring's goroutines: in a closed loop over
// HTTP the log cost 10-12% of the requests/s for ~6% of the node's CPU. At
// nice 10 the kernel gives a waking scoring thread the core at once, and the
// log works in the time scoring leaves idle (a closed loop leaves ~20% of it,
// waiting on wake-ups); when no time is idle it still gets about a tenth of
// a contended core, far more than it needs. Durable records are the
// exception: their appenders wait for the commit, and a niced committer
// woke late (the kernel let it wait for the scoring threads' slices: a
// closed loop of durable requests ran 6-10% slower), so a second committer
// at the process's priority commits as soon as one arrives. A preempted
// thread keeps its Go P, so the program should give the runtime
// BackgroundThreads more Ps than cores; modelgate serve does. Pebble's own
// goroutines (its WAL writer, flushes, compactions) stay at the process's
// priority.
//
// # Labels and export
//
// PutLabels writes labels synchronously (fsynced); an equal label is a no-op
// and a changed one replaces the old, moving it to the end of the label
// stream. Export streams a model's rows from an opaque Cursor, a stamp that
// stays valid across restarts:
//
//   - all rows: predictions in commit (stamp) order, each joined with its
//     label if one is stored. The committer assigns stamps in commit order,
//     so no row can appear behind a cursor already handed out, whatever its
//     request Time: exporting in request-time order would miss rows that
//     waited in the ring while a cursor passed their time.
//   - labelled rows: in label arrival order, each label joined with the
//     predictions of its id. Fraud labels come weeks late; a cursor over
//     prediction order would have passed those rows long before. With label
//     order, a job that resumes from yesterday's cursor gets exactly the rows
//     labelled (or relabelled) since, each once.
//
// AppendNDJSON renders a row as one JSON line for the HTTP layer.
//
// # Retention
//
// Prune (every PruneInterval in the background) deletes, per model, the
// predictions committed before now-MaxAge with one DeleteRange over the
// blocks whose last stamp is older (a block that straddles the cutoff, at
// most one commit's worth, goes with the next pass), then the id index runs
// older than every record left. Labels go by the same age, counted from
// their arrival. While the live files (sstables and WAL) exceed MaxBytes, it then
// deletes the oldest predictions of all models down to 90% of MaxBytes,
// choosing the cutoff stamp from Pebble's disk usage estimates, and compacts
// the deleted ranges so the space comes back at once. Pebble also keeps a
// few obsolete WAL files for reuse (about a memtable's worth) beyond MaxBytes.
//
// # Measurements (2-core VM shared with other work, predlog_bench_test.go)
//
// Bytes per demo record on disk after a full manual compaction
// (BenchmarkDiskBytesPerRecord): 85.0 with gateway-style ids (random prefix
// + hex sequence number: 81.4 for the record in its S2-compressed block,
// 3.6 for its id index entry, 2.5 once every run is merged and compressed),
// 85.3 with no manual compaction, 106.4 with random 20-hex-digit ids (10 bytes
// of entropy that no compression removes, in the record and again in a
// hash that spreads the index: 97.7 + 8.7). Before, with MinLZ applied by
// Pebble at flush and a Pebble key per index entry, the same were 94.1 and
// 116.8. Prefix sharing stores a demo record in 153 bytes instead of 194+4
// before compression. Per-value zstd made it worse (115 and 139 bytes with
// an older layout): zstd on one 194-byte record saves little after its
// frame header. So values are stored uncompressed inside blocks by default,
// and CompressZstd remains for large records.
//
// Throughput: Append costs about 110 ns and no allocation on the caller. At
// a steady 200,000 records/s (BenchmarkAppendPaced) the log spends 0.72-0.80
// µs of CPU per record, Pebble's flushes and the indexer included, and 1.05-
// 1.18 µs at 50,000/s (the benchmark's pacing loop measured alone and
// subtracted; BENCHMARKS.md has the history). The id index alone costs 80-
// 110 ns per entry (BenchmarkIndexEntries). In the scoring node, from both
// cores at once on 4,096 distinct transactions (BenchmarkHandlerParallel
// against BenchmarkHandlerLoggedParallel), the log adds about 970 ns of CPU
// per request, against about 1,550 ns before the run index, the sharded
// ring and block compression. A durable append with 16 concurrent writers
// takes ~34 µs (about 8 records share each fsync).
//
// Blocks of records are compressed with github.com/klauspost/compress/s2 by
// the committer. Pebble compresses the bottom levels' tables (the index runs,
// rewritten labels) with github.com/DataDog/zstd when cgo is on, and with
// github.com/klauspost/compress/zstd when built with -tags pebblegozstd or
// without cgo; per-value compression always uses klauspost/compress.
package predlog
