// Package artifact stores model artifacts (ONNX bytes) content-addressed by
// their sha256 digest in a Pebble database of its own.
//
// An artifact is written as chunks (Config.ChunkSize, 1 MiB by default) and a
// manifest: its size, its chunk size and the sha256 of every chunk. Put
// streams the reader into chunks as it reads, so an upload over
// Config.MaxBytes is refused (*TooLargeError) once its first excess byte
// arrives, without buffering the whole upload first.
//
// Invariants:
//
//   - The manifest is written last, in its own synced batch, after every
//     chunk of the artifact is in Pebble's write-ahead log. The WAL is
//     replayed in order, so after a crash an artifact is either whole or has
//     no manifest: a half-written upload never reads as an artifact. Chunks
//     left without a manifest (a crash mid-upload) are deleted by Open.
//   - Every read is verified: each chunk against its sha256 in the manifest
//     before any of its bytes are handed out, and the whole artifact against
//     its digest. A mismatch is ErrCorrupt; Get never returns bytes that do
//     not hash to the digest asked for.
//   - The same bytes are stored once: a Put of an artifact that is already
//     stored is a no-op that returns the same digest.
//
// Key layout: 'm' + 32-byte digest → manifest; 'c' + 8-byte blob id +
// 4-byte chunk index (both big-endian) → chunk. A blob id is given to each
// upload as it starts, before its digest is known, so concurrent uploads
// (even of the same bytes) never write each other's chunks; the manifest
// names the blob that holds the artifact's chunks.
package artifact
