package drift

import (
	"fmt"
	"math"
	"time"
)

// Merging windows across nodes.
//
// Windows are aligned on multiples of their length since the Unix epoch,
// so window n of every node covers the same stretch of time: a cluster's
// window n is the sum of the nodes' windows n. A node hands its closed
// windows out (ClosedSince, as exports); whoever merges them builds a
// Windows held at one window number (NewWindowsAt) and adds each node's
// windows into it (AddClosed). The result is judged like any other:
// Evaluate, Snapshot and Recent read it as if one node had seen every row.

// ExportVersion is the version byte of the sketch export format (see
// encode.go) this build writes and reads.
const ExportVersion = exportVersion

// SketchExportVersion returns the format version of an exported sketch, or
// ErrCorruptSketch when data is not one: a merger refuses exports of
// another version before it tries to read them.
func SketchExportVersion(data []byte) (int, error) {
	if len(data) < len(exportMagic)+1 || string(data[:len(exportMagic)]) != exportMagic {
		return 0, corrupt("not an exported sketch (bad magic)")
	}
	return int(data[len(exportMagic)]), nil
}

// ClosedWindow is one closed window, exported.
type ClosedWindow struct {
	// ID is the window's number: its start is ID × the window length
	// after the Unix epoch.
	ID int64
	// Rows is the rows it counted.
	Rows int64
	// Sketch is its export (Sketch.Export's format).
	Sketch []byte
}

// ClosedSince returns the closed windows kept one by one whose number is
// above after, oldest first, skipping windows without rows, and through,
// the number of the newest closed window: every window up to through that
// is not returned (and is above after) counted nothing. It rotates first,
// as the reads do.
func (w *Windows) ClosedSince(after int64) (through int64, out []ClosedWindow) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(w.number(w.cfg.Now()))
	cur := w.cur.Load()
	ring := int64(len(w.windows))
	first := max(after+1, cur-ring)
	for id := first; id < cur; id++ {
		f := &w.windows[mod(id, ring)]
		if f.id != id || f.counts[0] == 0 {
			continue
		}
		s := newSketch(w.lay, 1)
		f.addInto(&s.st)
		out = append(out, ClosedWindow{ID: id, Rows: int64(f.counts[0]), Sketch: s.Export()})
	}
	return cur - 1, out
}

// NewWindowsAt returns windows of profile p whose live window is number cur
// and stays so: their clock is stopped at its start. They hold nothing
// until AddClosed adds closed windows into them; what the leader of a
// cluster judges is such a Windows holding every node's windows.
func NewWindowsAt(p *Profile, cfg WindowConfig, cur int64) (*Windows, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	win := cfg.withDefaults().Window
	if cur > math.MaxInt64/int64(win) || cur < math.MinInt64/int64(win) {
		return nil, fieldErr(ErrInvalidConfig, "window number", cur, "is out of the clock's range")
	}
	at := time.Unix(0, cur*int64(win))
	cfg.Now = func() time.Time { return at }
	return NewWindows(p, cfg)
}

// AddClosed adds an exported sketch (of w's profile) into closed window
// id. Windows older than the ring or not yet closed are refused, as are
// exports of another profile (ErrLayoutMismatch) or format version, and
// corrupt ones (ErrCorruptSketch); nothing is added then. Counts beyond
// 2^32−1 in one window saturate, as a ring's counters do.
//
// A Windows remembers its judged runs on the premise that a closed window
// never changes: add every window before the first read.
func (w *Windows) AddClosed(id int64, export []byte) error {
	st, err := decode(w.lay, export)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.cur.Load()
	ring := int64(len(w.windows))
	if id >= cur || id < cur-ring {
		return fmt.Errorf("drift: window %d is not among the closed windows kept (%d to %d)", id, cur-ring, cur-1)
	}
	slot := &w.windows[mod(id, ring)]
	if slot.id != id {
		slot.reset(id)
	}
	add64To32(slot.counts, st.counts)
	addSums(slot.sums, st.sums)
	b := floorDiv(id, w.per)
	bucket := &w.buckets[mod(b, int64(len(w.buckets)))]
	if bucket.id != b {
		bucket.reset(b)
	}
	add64To32(bucket.counts, st.counts)
	addSums(bucket.sums, st.sums)
	return nil
}

// add64To32 adds 64-bit counts into 32-bit ones, saturating.
func add64To32(dst []uint32, src []uint64) {
	dst = dst[:len(src)]
	for i, c := range src {
		s := uint64(dst[i]) + c
		if s > math.MaxUint32 {
			s = math.MaxUint32
		}
		dst[i] = uint32(s)
	}
}
