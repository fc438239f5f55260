package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// Pebble replays its newest WAL up to the first record it cannot read and
// drops the rest without an error: a record torn by a crash mid-write, or a
// file cut short by a bad copy or a full disk. For the raft store that is a
// raft log whose tail silently vanished, so OpenStore looks for such a
// record before Pebble replays it and reports what it held.

// tornTail describes the unreadable record at the end of the newest WAL.
type tornTail struct {
	file   string
	offset int64 // where the record starts
	size   int64 // the file's size
	cause  error
	// What the record's readable bytes say it held; ok is false when too
	// little of it is left to tell.
	ok         bool
	count      uint32 // operations in the batch
	kind       byte   // the first operation's kind (pebble's InternalKeyKind)
	firstKey   []byte
	firstIndex uint64 // when firstKey is a log key
}

// Pebble's batch encoding (batchrepr): an 8-byte sequence number and a
// 4-byte count, then per operation a kind byte, a varint-prefixed key and,
// for these kinds, a varint-prefixed value.
const (
	batchHeaderLen  = 12
	kindSet         = 1
	kindRangeDelete = 15
)

// findTornTail reads the newest WAL in dir the way Pebble's recovery does
// and returns the record recovery would stop at, or nil when the WAL ends
// cleanly (or there is none).
func findTornTail(fs vfs.FS, dir string) (*tornTail, error) {
	if _, err := fs.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return nil, err
	}
	r := logs[len(logs)-1].OpenForRead()
	defer r.Close()
	for {
		rec, off, err := r.NextRecord()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			if !record.IsInvalidRecord(err) && !errors.Is(err, record.ErrUnexpectedEOF) {
				return nil, err
			}
			return readTorn(fs, off, err), nil
		}
		if _, err := io.Copy(io.Discard, rec); err != nil {
			return nil, err
		}
	}
}

// readTorn decodes what it can of the torn record's first chunk: the
// chunk header (7, 11 or 19 bytes by the format in its type byte), then
// the batch header and the first operation's key.
func readTorn(fs vfs.FS, off wal.Offset, cause error) *tornTail {
	t := &tornTail{file: off.PhysicalFile, offset: off.Physical, cause: cause}
	f, err := fs.Open(off.PhysicalFile)
	if err != nil {
		return t
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		t.size = st.Size()
	}
	buf := make([]byte, 64<<10)
	n, _ := f.ReadAt(buf, off.Physical)
	b := buf[:n]
	if len(b) < 7 {
		return t
	}
	var hdr int
	switch typ := b[6]; {
	case typ >= 1 && typ <= 4:
		hdr = 7
	case typ >= 5 && typ <= 8:
		hdr = 11
	case typ >= 9 && typ <= 12:
		hdr = 19
	default:
		return t
	}
	if len(b) < hdr+batchHeaderLen+1 {
		return t
	}
	length := int(binary.LittleEndian.Uint16(b[4:6]))
	p := b[hdr:min(len(b), hdr+length)]
	if len(p) < batchHeaderLen+1 {
		return t
	}
	t.count = binary.LittleEndian.Uint32(p[8:12])
	t.kind = p[batchHeaderLen]
	k, klen := binary.Uvarint(p[batchHeaderLen+1:])
	start := batchHeaderLen + 1 + klen
	if klen <= 0 || start+int(k) > len(p) {
		return t
	}
	t.firstKey = append([]byte{}, p[start:start+int(k)]...)
	t.ok = true
	if len(t.firstKey) == 9 && t.firstKey[0] == prefixLog {
		t.firstIndex = binary.BigEndian.Uint64(t.firstKey[1:])
	}
	return t
}

// dropped says, for the operator, what the torn record held, given the
// log's last index after recovery.
func (t *tornTail) dropped(last uint64) string {
	where := fmt.Sprintf("%s ends in a record it cannot read at byte %d of %d (%v)", t.file, t.offset, t.size, t.cause)
	switch {
	case !t.ok:
		return fmt.Sprintf("%s; too little of it is left to tell what it held: raft log entries after %d, if any, were dropped", where, last)
	case t.kind == kindSet && t.firstIndex > 0:
		return fmt.Sprintf("%s; it held raft log entries %d-%d, which were dropped (the log now ends at %d)", where, t.firstIndex, t.firstIndex+uint64(t.count)-1, last)
	case t.kind == kindSet:
		return fmt.Sprintf("%s; it held a raft stable-store write (%q: term or vote), which was dropped (the log ends at %d)", where, t.firstKey[1:], last)
	case t.kind == kindRangeDelete:
		return fmt.Sprintf("%s; it held a deletion of raft log entries from %d, which was dropped (the log ends at %d)", where, t.firstIndex, last)
	}
	return fmt.Sprintf("%s; it held %d operations of kind %d, which were dropped (the log ends at %d)", where, t.count, t.kind, last)
}
