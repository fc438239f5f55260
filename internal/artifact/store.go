package artifact

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/modelgate/modelgate/internal/pebblelog"
)

// Store is a content-addressed artifact store. All methods are safe for
// concurrent use.
type Store struct {
	db  *pebble.DB
	cfg Config
	dir string

	// mu orders the commit step of Put (is the manifest there? write it)
	// against Delete, so two uploads of the same bytes keep exactly one copy
	// and a Delete never races a Put into a manifest without chunks.
	mu       sync.Mutex
	nextBlob atomic.Uint64
	closed   atomic.Bool
	failed   atomic.Pointer[error] // sticky: the first write Pebble could not make
}

// Info describes one stored artifact.
type Info struct {
	Digest string `json:"digest"` // sha256, 64 lowercase hex digits
	Size   int64  `json:"size"`   // bytes
}

// Open opens (creating it if needed) the store in dir, which must not be
// shared with another Pebble database. Chunks left by an upload that never
// committed (a crash mid-Put) are deleted here.
func Open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	s := &Store{cfg: cfg, dir: dir}
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(cfg.MemTableSize),
		Logger:             pebblelog.New(cfg.Logger, "artifact", dir, s.fatal),
		FS:                 cfg.FS,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("artifact: cannot open the store in %s: %w", dir, err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("artifact: cannot open the store in %s: %w", dir, err)
	}
	return s, nil
}

// Close closes the database. Readers from Open must be closed first, and no
// other method may be running or called after it (they return ErrClosed
// when called after, but must not race it).
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close := func() (err error) {
		defer pebblelog.Recover(&err) // a DB whose WAL failed may Fatalf again
		return s.db.Close()
	}
	if err := close(); err != nil {
		return fmt.Errorf("artifact: cannot close the store in %s: %w", s.dir, err)
	}
	return nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Store) Config() Config { return s.cfg }

// recover finds the next free blob id and deletes the chunks of blobs no
// manifest names: uploads that were interrupted before their commit.
func (s *Store) recover() error {
	live := map[uint64]bool{}
	var next uint64
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagManifest}, UpperBound: []byte{tagManifest + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		var d digest
		copy(d[:], it.Key()[1:])
		m, err := decodeManifest(d, it.Value())
		if err != nil {
			// Leave it: reads of it will say ErrCorrupt, and Delete removes it.
			continue
		}
		live[m.blob] = true
		next = max(next, m.blob+1)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagChunk}, UpperBound: []byte{tagChunk + 1}})
	if err != nil {
		return err
	}
	var orphans []uint64
	for ok := it.First(); ok; {
		blob, _, valid := splitChunkKey(it.Key())
		if !valid {
			ok = it.Next()
			continue
		}
		next = max(next, blob+1)
		if !live[blob] {
			orphans = append(orphans, blob)
		}
		_, hi := blobBounds(blob)
		ok = it.SeekGE(hi)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if len(orphans) > 0 {
		b := s.db.NewBatch()
		for _, blob := range orphans {
			lo, hi := blobBounds(blob)
			b.DeleteRange(lo, hi, nil)
		}
		if err := s.apply(func() error { return s.db.Apply(b, pebble.Sync) }); err != nil {
			return fmt.Errorf("cannot delete the chunks of %d interrupted uploads: %w", len(orphans), err)
		}
	}
	s.nextBlob.Store(next)
	return nil
}

// Put reads r to its end and stores its bytes, returning their sha256 digest
// and size. It streams: at most one chunk is held in memory, and a reader
// with more than Config.MaxBytes bytes fails with *TooLargeError as soon as
// the excess arrives. Putting bytes that are already stored is a no-op —
// unless the stored copy fails verification, which the new upload then
// replaces (so re-uploading repairs an ErrCorrupt artifact). When Put fails
// nothing of the upload is kept. Put returns once the
// artifact is durable (its manifest is written with a synced batch).
func (s *Store) Put(r io.Reader) (string, int64, error) {
	return s.put(r, nil)
}

// PutExpect is Put of bytes that must hash to want: what a node fetched
// from another. Bytes that hash to anything else are refused with a
// *DigestError once the reader ends, and nothing of them is kept, so a
// corrupt or truncated transfer never lands in the store. It returns the
// size stored.
func (s *Store) PutExpect(r io.Reader, want string) (int64, error) {
	d, err := parseDigest(want)
	if err != nil {
		return 0, err
	}
	_, n, err := s.put(r, &d)
	return n, err
}

func (s *Store) put(r io.Reader, want *digest) (string, int64, error) {
	if s.closed.Load() {
		return "", 0, ErrClosed
	}
	if err := s.writable(); err != nil {
		return "", 0, err
	}
	blob := s.nextBlob.Add(1) - 1
	staged := false
	discard := func() {
		if staged {
			lo, hi := blobBounds(blob)
			// Best effort: if this fails the chunks are orphans Open deletes.
			_ = s.apply(func() error { return s.db.DeleteRange(lo, hi, pebble.NoSync) })
		}
	}
	var (
		whole = sha256.New()
		buf   = make([]byte, s.cfg.ChunkSize)
		lr    = io.LimitReader(r, s.cfg.MaxBytes+1)
		m     = manifest{chunkSize: int64(s.cfg.ChunkSize), blob: blob}
	)
	for {
		n, err := io.ReadFull(lr, buf)
		if n > 0 {
			m.size += int64(n)
			if m.size > s.cfg.MaxBytes {
				discard()
				return "", 0, &TooLargeError{Limit: s.cfg.MaxBytes}
			}
			chunk := buf[:n]
			whole.Write(chunk)
			m.sums = append(m.sums, sha256.Sum256(chunk))
			// Unsynced: the synced manifest commit below syncs the WAL, and
			// with it every chunk written before it.
			if werr := s.apply(func() error { return s.db.Set(ckey(blob, uint32(len(m.sums)-1)), chunk, pebble.NoSync) }); werr != nil {
				discard()
				return "", 0, fmt.Errorf("artifact: cannot store chunk %d: %w", len(m.sums)-1, werr)
			}
			staged = true
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			discard()
			return "", 0, fmt.Errorf("artifact: cannot read the upload after %d bytes: %w", m.size, err)
		}
	}
	var d digest
	whole.Sum(d[:0])
	if want != nil && d != *want {
		discard()
		return "", 0, &DigestError{Want: want.String(), Got: d.String(), Size: m.size}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return "", 0, ErrClosed
	}
	b := s.db.NewBatch()
	switch old, err := s.verify(d); {
	case err == nil:
		discard() // already stored and intact: keep the first copy
		return d.String(), m.size, nil
	case errors.Is(err, ErrCorrupt):
		// The stored copy is damaged: this upload replaces it.
		if old != nil {
			lo, hi := blobBounds(old.blob)
			b.DeleteRange(lo, hi, nil)
		}
	case !errors.Is(err, ErrNotFound):
		discard()
		return "", 0, err
	}
	b.Set(mkey(d), m.encode(), nil)
	if err := s.apply(func() error { return s.db.Apply(b, pebble.Sync) }); err != nil {
		discard()
		return "", 0, fmt.Errorf("artifact: cannot commit artifact %s: %w", d, err)
	}
	return d.String(), m.size, nil
}

// verify reads the stored copy of d through every check Get makes. It
// returns the manifest when it could be decoded, with the verdict.
func (s *Store) verify(d digest) (*manifest, error) {
	r, err := s.open(d.String())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		if _, err := r.next(); err == io.EOF {
			return r.m, nil
		} else if err != nil {
			return r.m, err
		}
	}
}

type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getManifest reads and decodes the manifest of d from r (the DB or a
// snapshot).
func (s *Store) getManifest(r reader, d digest) (*manifest, error) {
	v, closer, err := r.Get(mkey(d))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact: cannot read the manifest of %s: %w", d, err)
	}
	defer closer.Close()
	return decodeManifest(d, v)
}

// Has reports whether an artifact is stored under digest. It does not
// verify the bytes (Get does).
func (s *Store) Has(digestHex string) (bool, error) {
	_, err := s.Stat(digestHex)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Stat returns the size of the artifact stored under digest, from its
// manifest, without reading or verifying its bytes.
func (s *Store) Stat(digestHex string) (Info, error) {
	if s.closed.Load() {
		return Info{}, ErrClosed
	}
	d, err := parseDigest(digestHex)
	if err != nil {
		return Info{}, err
	}
	m, err := s.getManifest(s.db, d)
	if err != nil {
		return Info{}, err
	}
	return Info{Digest: digestHex, Size: m.size}, nil
}

// Delete removes the artifact stored under digest (ErrNotFound if there is
// none), durably. Readers already open keep reading the version they opened.
func (s *Store) Delete(digestHex string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	d, err := parseDigest(digestHex)
	if err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	m, err := s.getManifest(s.db, d)
	switch {
	case err == nil:
		lo, hi := blobBounds(m.blob)
		b.DeleteRange(lo, hi, nil)
	case errors.Is(err, ErrCorrupt):
		// Delete the manifest; its chunks, if any, are orphans Open deletes.
	default:
		return err
	}
	b.Delete(mkey(d), nil)
	if err := s.apply(func() error { return s.db.Apply(b, pebble.Sync) }); err != nil {
		return fmt.Errorf("artifact: cannot delete artifact %s: %w", d, err)
	}
	return nil
}

// List returns every stored artifact, ordered by digest. Sizes come from the
// manifests; the bytes are not verified. A manifest that cannot be decoded
// is listed with size -1, so an operator sees it and can Delete it.
func (s *Store) List() ([]Info, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagManifest}, UpperBound: []byte{tagManifest + 1}})
	if err != nil {
		return nil, fmt.Errorf("artifact: cannot list artifacts: %w", err)
	}
	var out []Info
	for ok := it.First(); ok; ok = it.Next() {
		var d digest
		copy(d[:], it.Key()[1:])
		info := Info{Digest: d.String(), Size: -1}
		if m, err := decodeManifest(d, it.Value()); err == nil {
			info.Size = m.size
		}
		out = append(out, info)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("artifact: cannot list artifacts: %w", err)
	}
	return out, nil
}

// apply runs one write. Pebble reports a write it could not make to the
// WAL with Fatalf, which internal/pebblelog logs and turns into a panic:
// apply recovers it into the store's sticky failure.
func (s *Store) apply(write func() error) (err error) {
	if err := s.writable(); err != nil {
		return err
	}
	defer func() {
		if _, ok := err.(*pebblelog.Fatal); ok {
			err = s.writable() // what fatal recorded, wrapping ErrFailed
		}
	}()
	defer pebblelog.Recover(&err)
	return write()
}

// fatal records Pebble's Fatalf as the store's sticky failure.
func (s *Store) fatal(f *pebblelog.Fatal) {
	err := fmt.Errorf("%w: %s", ErrFailed, f)
	s.failed.CompareAndSwap(nil, &err)
}

// writable returns the sticky failure, if any.
func (s *Store) writable() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// Healthy returns nil while the store accepts writes, the sticky failure
// (wrapping ErrFailed) after Pebble could not make one, and ErrClosed after
// Close.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.writable()
}
