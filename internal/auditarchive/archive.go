package auditarchive

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/modelgate/modelgate/internal/pebblelog"
	"github.com/modelgate/modelgate/registry"
)

// ErrClosed is returned by an Archive used after Close.
var ErrClosed = errors.New("auditarchive: archive closed")

// keyRecord prefixes a record's key: the tag, then its Seq big-endian, so
// keys sort in Seq order.
const keyRecord = 'r'

// Archive is the archive store. Its methods are safe for concurrent use.
type Archive struct {
	dir    string
	db     *pebble.DB
	closed atomic.Bool
}

// Open opens (creating if missing) the archive in dir. log may be nil.
func Open(dir string, log *slog.Logger) (*Archive, error) {
	a := &Archive{dir: dir}
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       1 << 20, // trims are rare and small; keep the node's memory for scoring
		Logger:             pebblelog.New(log, "audit archive", dir, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("auditarchive: cannot open the archive in %s: %w", dir, err)
	}
	a.db = db
	return a, nil
}

func key(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = keyRecord
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// Put archives recs in one synced batch: when it returns nil they survive
// a crash. Records already archived are written again unchanged.
func (a *Archive) Put(recs []registry.AuditRecord) (err error) {
	if a.closed.Load() {
		return ErrClosed
	}
	if len(recs) == 0 {
		return nil
	}
	defer pebblelog.Recover(&err) // a WAL that cannot be written or synced
	b := a.db.NewBatch()
	defer b.Close()
	for i := range recs {
		v, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("auditarchive: cannot encode audit record %d: %w", recs[i].Seq, err)
		}
		if err := b.Set(key(recs[i].Seq), v, nil); err != nil {
			return fmt.Errorf("auditarchive: cannot archive audit record %d in %s: %w", recs[i].Seq, a.dir, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("auditarchive: cannot archive audit records %d to %d in %s: %w", recs[0].Seq, recs[len(recs)-1].Seq, a.dir, err)
	}
	return nil
}

// Audit returns the archived records f selects (its model and version
// filter, Since, Until and Limit, as registry.State.Audit reads them), in
// Seq order.
func (a *Archive) Audit(f registry.AuditFilter) ([]registry.AuditRecord, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if f.Since == ^uint64(0) || f.Until != 0 && f.Until <= f.Since {
		return nil, nil
	}
	opts := &pebble.IterOptions{LowerBound: key(f.Since + 1), UpperBound: []byte{keyRecord + 1}}
	if f.Until != 0 && f.Until != ^uint64(0) {
		opts.UpperBound = key(f.Until + 1)
	}
	it, err := a.db.NewIter(opts)
	if err != nil {
		return nil, fmt.Errorf("auditarchive: cannot read the archive in %s: %w", a.dir, err)
	}
	defer it.Close()
	var out []registry.AuditRecord
	for ok := it.First(); ok; ok = it.Next() {
		var r registry.AuditRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("auditarchive: archived audit record %d in %s does not decode: %w", binary.BigEndian.Uint64(it.Key()[1:]), a.dir, err)
		}
		if !f.Match(&r) {
			continue
		}
		out = append(out, r)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("auditarchive: cannot read the archive in %s: %w", a.dir, err)
	}
	return out, nil
}

// Close closes the archive; no method may be running or called after it.
func (a *Archive) Close() (err error) {
	if a.closed.Swap(true) {
		return nil
	}
	defer pebblelog.Recover(&err)
	return a.db.Close()
}
