package artifact

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Get returns the bytes stored under digest, verified: every chunk against
// its checksum and the whole against the digest. On any mismatch it returns
// ErrCorrupt and no bytes.
func (s *Store) Get(digestHex string) ([]byte, error) {
	r, err := s.open(digestHex)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]byte, 0, min(r.m.size, 64<<20))
	for {
		chunk, err := r.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
	}
}

// Open returns a reader of the artifact stored under digest, for streaming
// a large artifact (to an HTTP client, to another node). It reads a
// consistent snapshot: a concurrent Delete does not cut it short. Each chunk
// is verified before any of its bytes are returned; the last Read returns
// ErrCorrupt instead of io.EOF if the whole does not hash to the digest.
// A caller that must not act on a partial artifact (loading a model) uses
// Get, or treats any error from Read as the artifact's rejection. The reader
// must be closed, and before the Store is.
func (s *Store) Open(digestHex string) (io.ReadCloser, error) {
	r, err := s.open(digestHex)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// chunkReader walks the chunks of one artifact in a snapshot.
type chunkReader struct {
	d     digest
	m     *manifest
	snap  *pebble.Snapshot
	it    *pebble.Iterator
	i     int       // next chunk
	whole hash.Hash // over the chunks returned so far
	buf   []byte    // the current chunk, copied out of the iterator
	rest  []byte    // what Read has not returned of buf
	err   error     // sticky
}

func (s *Store) open(digestHex string) (*chunkReader, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	d, err := parseDigest(digestHex)
	if err != nil {
		return nil, err
	}
	snap := s.db.NewSnapshot()
	m, err := s.getManifest(snap, d)
	if err != nil {
		snap.Close()
		return nil, err
	}
	lo, hi := blobBounds(m.blob)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("artifact: cannot read artifact %s: %w", d, err)
	}
	it.First()
	return &chunkReader{d: d, m: m, snap: snap, it: it, whole: sha256.New()}, nil
}

// next returns the next verified chunk (valid until the next call), or
// io.EOF after the last one once the whole digest has been checked.
func (r *chunkReader) next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	corrupt := func(format string, args ...any) ([]byte, error) {
		r.err = fmt.Errorf("%w: artifact %s: "+format, append([]any{ErrCorrupt, r.d}, args...)...)
		return nil, r.err
	}
	if r.i == len(r.m.sums) {
		if r.it.Valid() {
			return corrupt("chunks beyond the %d its manifest lists", len(r.m.sums))
		}
		if err := r.it.Error(); err != nil {
			r.err = fmt.Errorf("artifact: cannot read artifact %s: %w", r.d, err)
			return nil, r.err
		}
		var got digest
		r.whole.Sum(got[:0])
		if got != r.d {
			return corrupt("its bytes hash to %s", got)
		}
		r.err = io.EOF
		return nil, io.EOF
	}
	if !r.it.Valid() {
		if err := r.it.Error(); err != nil {
			r.err = fmt.Errorf("artifact: cannot read artifact %s: %w", r.d, err)
			return nil, r.err
		}
		return corrupt("chunk %d of %d is missing", r.i, len(r.m.sums))
	}
	_, idx, ok := splitChunkKey(r.it.Key())
	if !ok || int(idx) != r.i {
		return corrupt("chunk %d of %d is missing", r.i, len(r.m.sums))
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		r.err = fmt.Errorf("artifact: cannot read chunk %d of artifact %s: %w", r.i, r.d, err)
		return nil, r.err
	}
	if int64(len(v)) != r.m.chunkLen(r.i) {
		return corrupt("chunk %d has %d bytes, its manifest says %d", r.i, len(v), r.m.chunkLen(r.i))
	}
	if sha256.Sum256(v) != r.m.sums[r.i] {
		return corrupt("chunk %d does not match its checksum", r.i)
	}
	r.buf = append(r.buf[:0], v...)
	r.whole.Write(r.buf)
	r.i++
	r.it.Next()
	return r.buf, nil
}

// Read implements io.Reader.
func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.rest) == 0 {
		chunk, err := r.next()
		if err != nil {
			return 0, err
		}
		r.rest = chunk
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy streams chunk by chunk.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(r.rest) > 0 {
		n, err := w.Write(r.rest)
		total += int64(n)
		r.rest = nil
		if err != nil {
			return total, err
		}
	}
	for {
		chunk, err := r.next()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// Close releases the snapshot.
func (r *chunkReader) Close() error {
	if r.it == nil {
		return nil
	}
	err := errors.Join(r.it.Close(), r.snap.Close())
	r.it, r.snap = nil, nil
	if r.err == nil {
		r.err = ErrClosed
	}
	return err
}
