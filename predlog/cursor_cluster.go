package predlog

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"sort"
)

// ClusterCursor is the position of an export that merges several logs (one
// per cluster node): every node's own stamp, plus a floor for the nodes it
// does not name (a node that joined after the cursor was handed out starts
// there, so none of its rows is skipped).
//
// On the wire it is a Cursor: "c1" and the URL-safe base64 (no padding) of
//
//	mode byte ('p' all rows, 'l' labelled) | uvarint floor | uvarint count |
//	count × (uvarint len | node id | uvarint stamp), ids in ascending order
//
// The "1" is the format's version: a later format takes another digit, and
// a parser refuses what it does not know rather than misread it. Encoding
// is canonical (one string per position), which the fuzz test holds the
// parser to. A single-log Cursor ("p…"/"l…") is accepted too and means the
// same stamp on every node, so the cursors handed out before a node joined
// a cluster (and webhook links made from CursorAt) keep working.
type ClusterCursor struct {
	Labelled bool
	// Floor is the stamp of every node not in Nodes.
	Floor int64
	// Nodes maps a node's id to the stamp its rows resume after.
	Nodes map[string]int64
}

// Bounds on a cluster cursor, so a client cannot make a node decode or
// allocate without limit.
const (
	clusterCursorPrefix = "c1"
	maxCursorNodes      = 1024
	maxCursorNodeID     = 255
	maxClusterCursor    = 64 << 10
)

// ParseClusterCursor reads an export cursor for a merged export in the
// given mode: "" (the start), a single-log cursor, or a cluster cursor.
// Anything else, or a cursor of the other mode, is ErrBadCursor.
func ParseClusterCursor(c Cursor, labelled bool) (ClusterCursor, error) {
	cc := ClusterCursor{Labelled: labelled, Nodes: map[string]int64{}}
	if len(c) < len(clusterCursorPrefix) || c[:len(clusterCursorPrefix)] != clusterCursorPrefix {
		floor, err := c.stamp(labelled)
		if err != nil {
			return ClusterCursor{}, err
		}
		cc.Floor = floor
		return cc, nil
	}
	if len(c) > maxClusterCursor {
		return ClusterCursor{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(c[len(clusterCursorPrefix):]))
	if err != nil || len(b) < 1 {
		return ClusterCursor{}, ErrBadCursor
	}
	want := byte(cursorRows)
	if labelled {
		want = cursorLabelled
	}
	if b[0] != want {
		return ClusterCursor{}, ErrBadCursor
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	floor, ok := next()
	if !ok || floor > math.MaxInt64 {
		return ClusterCursor{}, ErrBadCursor
	}
	cc.Floor = int64(floor)
	count, ok := next()
	if !ok || count > maxCursorNodes {
		return ClusterCursor{}, ErrBadCursor
	}
	prev := ""
	for i := uint64(0); i < count; i++ {
		n, ok := next()
		if !ok || n == 0 || n > maxCursorNodeID || n > uint64(len(b)) {
			return ClusterCursor{}, ErrBadCursor
		}
		id := string(b[:n])
		b = b[n:]
		if i > 0 && id <= prev {
			return ClusterCursor{}, ErrBadCursor
		}
		prev = id
		st, ok := next()
		if !ok || st > math.MaxInt64 {
			return ClusterCursor{}, ErrBadCursor
		}
		cc.Nodes[id] = int64(st)
	}
	if len(b) != 0 {
		return ClusterCursor{}, ErrBadCursor
	}
	// Uvarint accepts over-long encodings; one position, one string.
	if cc.Cursor() != c {
		return ClusterCursor{}, ErrBadCursor
	}
	return cc, nil
}

// Cursor encodes cc. Node ids longer than 255 bytes cannot be encoded and
// are not node ids this project makes (cluster member ids are short).
func (cc ClusterCursor) Cursor() Cursor {
	ids := make([]string, 0, len(cc.Nodes))
	for id := range cc.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b := make([]byte, 0, 16+len(ids)*24)
	mode := byte(cursorRows)
	if cc.Labelled {
		mode = cursorLabelled
	}
	b = append(b, mode)
	b = binary.AppendUvarint(b, uint64(cc.Floor))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, uint64(cc.Nodes[id]))
	}
	return Cursor(clusterCursorPrefix + base64.RawURLEncoding.EncodeToString(b))
}

// Of is the single-log cursor node's export resumes from.
func (cc ClusterCursor) Of(node string) Cursor {
	st, ok := cc.Nodes[node]
	if !ok {
		st = cc.Floor
	}
	return makeCursor(cc.Labelled, st)
}

// Stamp is the stamp node's export resumes after.
func (cc ClusterCursor) Stamp(node string) int64 {
	if st, ok := cc.Nodes[node]; ok {
		return st
	}
	return cc.Floor
}

// CursorStamp returns the stamp a single-log cursor stands after, for
// merging the rows of several logs in stamp order.
func CursorStamp(c Cursor, labelled bool) (int64, error) { return c.stamp(labelled) }
