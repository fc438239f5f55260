package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func open(t *testing.T, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// countChunks counts every chunk key in the DB, live or not.
func countChunks(t *testing.T, s *Store) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagChunk}, UpperBound: []byte{tagChunk + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize, MaxBytes: 1 << 20})
	f := func(name string, data []byte, chunks int) {
		t.Helper()
		d, n, err := s.Put(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: put: %v", name, err)
		}
		if d != sum(data) || n != int64(len(data)) {
			t.Fatalf("%s: put = %s, %d; want %s, %d", name, d, n, sum(data), len(data))
		}
		got, err := s.Get(d)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: get: %d bytes, %v", name, len(got), err)
		}
		r, err := s.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: open: %d bytes, %v", name, len(got), err)
		}
		var buf bytes.Buffer
		r, _ = s.Open(d)
		if _, err := io.Copy(&buf, r); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("%s: io.Copy: %d bytes, %v", name, buf.Len(), err)
		}
		r.Close()
		info, err := s.Stat(d)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("%s: stat = %+v, %v", name, info, err)
		}
		m, _ := s.getManifest(s.db, mustDigest(t, d))
		if len(m.sums) != chunks {
			t.Fatalf("%s: %d chunks, want %d", name, len(m.sums), chunks)
		}
	}
	f("empty", nil, 0)
	f("small", []byte("onnx"), 1)
	f("one chunk exactly", randBytes(1, MinChunkSize), 1)
	f("multi-chunk", randBytes(2, 5*MinChunkSize+17), 6)
	f("chunk multiple", randBytes(3, 3*MinChunkSize), 3)

	list, err := s.List()
	if err != nil || len(list) != 5 {
		t.Fatalf("list = %v, %v", list, err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Digest >= list[i].Digest {
			t.Fatalf("list not ordered by digest: %v", list)
		}
	}
}

func mustDigest(t *testing.T, s string) digest {
	t.Helper()
	d, err := parseDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSizeLimit(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize, MaxBytes: 10_000})
	if _, _, err := s.Put(bytes.NewReader(randBytes(1, 10_000))); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	before := countChunks(t, s)
	_, _, err := s.Put(bytes.NewReader(randBytes(2, 10_001)))
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 10_000 {
		t.Fatalf("one byte over: %v, want *TooLargeError{10000}", err)
	}
	// An endless reader proves Put does not read everything first.
	_, _, err = s.Put(endless{})
	if !errors.As(err, &tl) {
		t.Fatalf("endless reader: %v", err)
	}
	if got := countChunks(t, s); got != before {
		t.Fatalf("refused uploads left chunks: %d, want %d", got, before)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("list = %v", list)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestReaderError(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	_, _, err := s.Put(&failing{n: 3*MinChunkSize + 5})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("connection reset")) {
		t.Fatalf("err = %v", err)
	}
	if n := countChunks(t, s); n != 0 {
		t.Fatalf("failed upload left %d chunks", n)
	}
}

func TestCorruption(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	data := randBytes(7, 3*MinChunkSize+100)
	d, _, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.getManifest(s.db, mustDigest(t, d))
	if err != nil {
		t.Fatal(err)
	}
	key := ckey(m.blob, 1)
	orig, closer, err := s.db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	orig = bytes.Clone(orig)
	closer.Close()
	set := func(k, v []byte) {
		t.Helper()
		if err := s.db.Set(k, v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	expectCorrupt := func(what string) {
		t.Helper()
		got, err := s.Get(d)
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Fatalf("%s: Get = %d bytes, %v; want ErrCorrupt and no bytes", what, len(got), err)
		}
	}

	flipped := bytes.Clone(orig)
	flipped[10] ^= 0x01
	set(key, flipped)
	expectCorrupt("flipped byte")
	// The streaming reader hands out chunk 0, then refuses chunk 1.
	r, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrCorrupt) || len(got) != MinChunkSize || !bytes.Equal(got, data[:MinChunkSize]) {
		t.Fatalf("Open: read %d bytes, %v; want the first chunk then ErrCorrupt", len(got), err)
	}

	set(key, orig[:len(orig)-1])
	expectCorrupt("short chunk")
	if err := s.db.Delete(key, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	expectCorrupt("missing chunk")
	set(key, orig)
	if b, err := s.Get(d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("restored chunk: %v", err)
	}
	set(ckey(m.blob, 4), []byte("extra"))
	expectCorrupt("extra chunk")
	if err := s.db.Delete(ckey(m.blob, 4), pebble.Sync); err != nil {
		t.Fatal(err)
	}

	// A chunk and its checksum both changed still fails the whole digest.
	m2 := *m
	m2.sums = append([][32]byte(nil), m.sums...)
	m2.sums[1] = sha256.Sum256(flipped)
	set(key, flipped)
	set(mkey(mustDigest(t, d)), m2.encode())
	expectCorrupt("chunk and checksum rewritten")

	// A damaged manifest.
	set(mkey(mustDigest(t, d)), []byte{manifestVersion, 0xff})
	expectCorrupt("truncated manifest")
	if ok, err := s.Has(d); ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Has on a corrupt manifest = %v, %v", ok, err)
	}

	// Putting the bytes again repairs the artifact.
	if d2, _, err := s.Put(bytes.NewReader(data)); err != nil || d2 != d {
		t.Fatalf("re-put: %s, %v", d2, err)
	}
	if b, err := s.Get(d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("after re-put: %v", err)
	}
}

func TestRepairDamagedChunk(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	data := randBytes(8, 2*MinChunkSize)
	d, _, _ := s.Put(bytes.NewReader(data))
	m, _ := s.getManifest(s.db, mustDigest(t, d))
	if err := s.db.Set(ckey(m.blob, 0), make([]byte, MinChunkSize), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get = %v", err)
	}
	if _, _, err := s.Put(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("after re-put: %v", err)
	}
	if n := countChunks(t, s); n != 2 {
		t.Fatalf("%d chunks after repair, want 2", n)
	}
}

func TestIdempotentPut(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	data := randBytes(9, 2*MinChunkSize+1)
	d1, n1, err1 := s.Put(bytes.NewReader(data))
	d2, n2, err2 := s.Put(bytes.NewReader(data))
	if err1 != nil || err2 != nil || d1 != d2 || n1 != n2 {
		t.Fatalf("put twice: (%s %d %v) (%s %d %v)", d1, n1, err1, d2, n2, err2)
	}
	if n := countChunks(t, s); n != 3 {
		t.Fatalf("%d chunks stored, want one copy (3)", n)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("list = %v", list)
	}
}

func TestDeleteAndErrors(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	data := randBytes(10, MinChunkSize+1)
	d, _, _ := s.Put(bytes.NewReader(data))
	r, err := s.Open(d) // a reader opened before the delete keeps its snapshot
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reader across delete: %v", err)
	}
	r.Close()
	if _, err := s.Get(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
	if ok, err := s.Has(d); ok || err != nil {
		t.Fatalf("Has after delete = %v, %v", ok, err)
	}
	if err := s.Delete(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	for _, bad := range []string{"", "abc", sum(data)[:63] + "G", "ABCDEF" + sum(data)[6:]} {
		if _, err := s.Get(bad); !errors.Is(err, ErrInvalidDigest) {
			t.Fatalf("Get(%q) = %v", bad, err)
		}
	}
	s.Close()
	if _, _, err := s.Put(bytes.NewReader(data)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after close = %v", err)
	}
}

func TestReopenAndOrphans(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Config{ChunkSize: MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(11, 3*MinChunkSize)
	d, _, _ := s.Put(bytes.NewReader(data))
	// An upload that crashed before its manifest: chunks of an unnamed blob.
	orphan := s.nextBlob.Add(1) - 1
	for i := range 2 {
		if err := s.db.Set(ckey(orphan, uint32(i)), randBytes(uint64(i), 100), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Config{ChunkSize: MinChunkSize})
	if got, err := s.Get(d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after reopen: %v", err)
	}
	if n := countChunks(t, s); n != 3 {
		t.Fatalf("%d chunks after reopen, want 3 (orphans deleted)", n)
	}
	if next := s.nextBlob.Load(); next <= orphan {
		t.Fatalf("next blob %d reuses blob ids (orphan was %d)", next, orphan)
	}
	// New uploads after reopen do not collide with stored blobs.
	d2, _, err := s.Put(bytes.NewReader(randBytes(12, 2*MinChunkSize)))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{d, d2} {
		if _, err := s.Get(x); err != nil {
			t.Fatalf("Get(%s) = %v", x, err)
		}
	}
}

func TestConcurrentPuts(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	const workers, each = 8, 6
	blobs := make([][]byte, 4) // shared by several workers: same bytes at once
	for i := range blobs {
		blobs[i] = randBytes(uint64(100+i), (i+1)*MinChunkSize+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				data := blobs[(w+i)%len(blobs)]
				if i%2 == 1 {
					data = randBytes(uint64(1000+w*each+i), 2*MinChunkSize+w)
				}
				d, _, err := s.Put(bytes.NewReader(data))
				if err == nil && d != sum(data) {
					err = fmt.Errorf("digest %s, want %s", d, sum(data))
				}
				if err == nil {
					var got []byte
					got, err = s.Get(d)
					if err == nil && !bytes.Equal(got, data) {
						err = fmt.Errorf("read back different bytes for %s", d)
					}
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := len(blobs) + workers*each/2
	if len(list) != want {
		t.Fatalf("%d artifacts, want %d", len(list), want)
	}
	chunks := 0
	for _, info := range list {
		chunks += int((info.Size + MinChunkSize - 1) / MinChunkSize)
	}
	if n := countChunks(t, s); n != chunks {
		t.Fatalf("%d chunks stored, want %d (one copy of each artifact)", n, chunks)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(c Config, ok bool) {
		t.Helper()
		if err := c.Validate(); (err == nil) != ok {
			t.Fatalf("Validate(%+v) = %v", c, err)
		}
	}
	f(Config{}, true)
	f(DefaultConfig(), true)
	f(Config{ChunkSize: 100}, false)
	f(Config{ChunkSize: MaxChunkSize + 1}, false)
	f(Config{MaxBytes: -1}, false)
	if _, err := Open(t.TempDir(), Config{ChunkSize: 1}); err == nil {
		t.Fatal("Open accepted a bad config")
	}
}

// TestPutExpect: bytes that hash to the expected digest are stored; a
// corrupted copy or a truncated one is refused with a *DigestError and
// leaves no chunk behind (nothing half-written), and the good copy can
// still be put afterwards.
func TestPutExpect(t *testing.T) {
	s := open(t, t.TempDir(), Config{ChunkSize: MinChunkSize})
	data := randBytes(11, 3*MinChunkSize+7)
	want := sum(data)
	bad := append([]byte{}, data...)
	bad[MinChunkSize+3] ^= 0xff
	f := func(in []byte) {
		t.Helper()
		_, err := s.PutExpect(bytes.NewReader(in), want)
		var de *DigestError
		if !errors.As(err, &de) || !errors.Is(err, ErrDigestMismatch) || de.Want != want || de.Size != int64(len(in)) {
			t.Fatalf("put of %d wrong bytes: %v", len(in), err)
		}
		if n := countChunks(t, s); n != 0 {
			t.Fatalf("%d chunks left after a refused put", n)
		}
		if ok, _ := s.Has(want); ok {
			t.Fatal("the refused bytes are stored under the expected digest")
		}
	}
	f(bad)
	f(data[:2*MinChunkSize])
	n, err := s.PutExpect(bytes.NewReader(data), want)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("put of the right bytes: %d %v", n, err)
	}
	if got, err := s.Get(want); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v", err)
	}
	if _, err := s.PutExpect(bytes.NewReader(data), "xyz"); !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("bad expected digest: %v", err)
	}
}
