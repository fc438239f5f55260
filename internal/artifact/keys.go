package artifact

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Key prefixes. Manifests sort before chunks; nothing else lives in the DB.
const (
	tagChunk    = 'c'
	tagManifest = 'm'
)

const (
	digestLen   = sha256.Size
	manifestKey = 1 + digestLen
	chunkKeyLen = 1 + 8 + 4
)

// manifestVersion is the first byte of every manifest value, so the format
// can change without guessing.
const manifestVersion = 1

// maxChunks bounds the chunk count a manifest may claim (4 GiB of 1 MiB
// chunks with room to spare), so a corrupt manifest cannot ask for a huge
// allocation.
const maxChunks = 1 << 22

type digest [digestLen]byte

func (d digest) String() string { return hex.EncodeToString(d[:]) }

// parseDigest accepts exactly 64 lowercase hex digits: one spelling per
// artifact, so digests compare as strings everywhere else.
func parseDigest(s string) (digest, error) {
	var d digest
	if len(s) != 2*digestLen {
		return d, fmt.Errorf("%w: %q", ErrInvalidDigest, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return d, fmt.Errorf("%w: %q", ErrInvalidDigest, s)
		}
	}
	hex.Decode(d[:], []byte(s))
	return d, nil
}

func mkey(d digest) []byte {
	k := make([]byte, 0, manifestKey)
	return append(append(k, tagManifest), d[:]...)
}

func ckey(blob uint64, idx uint32) []byte {
	k := make([]byte, chunkKeyLen)
	k[0] = tagChunk
	binary.BigEndian.PutUint64(k[1:], blob)
	binary.BigEndian.PutUint32(k[9:], idx)
	return k
}

// blobBounds returns the key range holding every chunk of blob.
func blobBounds(blob uint64) (lo, hi []byte) {
	lo = ckey(blob, 0)
	hi = make([]byte, 9)
	hi[0] = tagChunk
	binary.BigEndian.PutUint64(hi[1:], blob+1)
	if blob == ^uint64(0) {
		hi = []byte{tagChunk + 1}
	}
	return lo, hi
}

// splitChunkKey returns the blob id and chunk index of a chunk key.
func splitChunkKey(k []byte) (blob uint64, idx uint32, ok bool) {
	if len(k) != chunkKeyLen || k[0] != tagChunk {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint32(k[9:]), true
}

// manifest describes one stored artifact.
type manifest struct {
	size      int64
	chunkSize int64
	blob      uint64
	sums      [][digestLen]byte // sha256 of each chunk, in order
}

func (m *manifest) encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+8+len(m.sums)*digestLen)
	b = append(b, manifestVersion)
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(m.chunkSize))
	b = binary.BigEndian.AppendUint64(b, m.blob)
	b = binary.AppendUvarint(b, uint64(len(m.sums)))
	for _, s := range m.sums {
		b = append(b, s[:]...)
	}
	return b
}

// decodeManifest parses and checks a manifest: its chunk count must be the
// one its size and chunk size imply. Every failure is ErrCorrupt.
func decodeManifest(d digest, b []byte) (*manifest, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: artifact %s: manifest %s", ErrCorrupt, d, why)
	}
	if len(b) == 0 || b[0] != manifestVersion {
		return nil, bad("has an unknown format")
	}
	b = b[1:]
	var vals [2]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, bad("is truncated")
		}
		vals[i], b = v, b[n:]
	}
	if len(b) < 8 {
		return nil, bad("is truncated")
	}
	m := &manifest{size: int64(vals[0]), chunkSize: int64(vals[1]), blob: binary.BigEndian.Uint64(b)}
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, bad("is truncated")
	}
	b = b[k:]
	if m.size < 0 || m.chunkSize < MinChunkSize || m.chunkSize > MaxChunkSize || n > maxChunks {
		return nil, bad("has impossible sizes")
	}
	if want := (uint64(m.size) + uint64(m.chunkSize) - 1) / uint64(m.chunkSize); n != want {
		return nil, bad(fmt.Sprintf("lists %d chunks where its size needs %d", n, want))
	}
	if uint64(len(b)) != n*digestLen {
		return nil, bad("has the wrong length")
	}
	m.sums = make([][digestLen]byte, n)
	for i := range m.sums {
		copy(m.sums[i][:], b[i*digestLen:])
	}
	return m, nil
}

// chunkLen is the length chunk i of m must have.
func (m *manifest) chunkLen(i int) int64 {
	if i < len(m.sums)-1 {
		return m.chunkSize
	}
	return m.size - int64(len(m.sums)-1)*m.chunkSize
}
