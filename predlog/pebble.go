package predlog

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"

	"github.com/modelgate/modelgate/internal/pebblelog"
)

// Pebble settings, chosen by measurement (see doc.go and
// predlog_bench_test.go): 32 KiB data blocks give zstd enough records to
// find the repetition between them where it compresses (the two bottom
// levels; the upper ones hold blocks the committer compressed, see
// compression). No bloom filters: they would cost bytes per record for point
// reads that are rare (lookups by id, label joins).
const blockSize = 32 << 10

func (l *Log) pebbleOptions() *pebble.Options {
	o := &pebble.Options{
		FS:                 l.cfg.FS,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(l.cfg.MemTableSize),
		CacheSize:          l.cfg.CacheSize,
		Logger:             pebblelog.New(l.cfg.Logger, "predlog", l.cfg.Dir, l.pebbleFatal),
	}
	for i := range o.Levels {
		o.Levels[i].BlockSize = blockSize
		o.Levels[i].IndexBlockSize = 256 << 10
	}
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return compression })
	if tunePebble != nil {
		tunePebble(o)
	}
	return o
}

// compression leaves the upper levels' tables uncompressed: blocks of
// records arrive compressed by the committer (block.go) and flushed tables
// of them move down to the bottom without being rewritten, so Pebble's own
// compression of them would be CPU spent for nothing. The two bottom levels
// use zstd, for the id index runs and for whatever compactions do rewrite
// (labels, blocks that land in tables beside them).
var compression = func() pebble.DBCompressionSettings {
	cs := pebble.DBCompressionGood
	cs.Name = "predlog"
	for i := 0; i < len(cs.Levels)-2; i++ {
		cs.Levels[i] = block.NoCompression
	}
	return cs
}()

// tunePebble, when set (by benchmarks), adjusts the options.
var tunePebble func(*pebble.Options)

// pebbleFatal makes the log unhealthy for good when Pebble calls Fatalf
// (internal/pebblelog logs it and then panics). Pebble does when a commit
// cannot be written or synced: the committer and every other writer here
// recover the panic (protect), so the node stays up and reports itself not
// ready instead. A Fatalf on one of Pebble's own background goroutines (a
// MANIFEST that cannot be written) is not recovered and ends the process,
// after the ERROR line.
func (l *Log) pebbleFatal(f *pebblelog.Fatal) {
	l.markFailed(fmt.Errorf("%w: Pebble in %s: %s", ErrUnhealthy, l.cfg.Dir, f.Msg))
}

// forEachModel calls fn with every model that has a key under tag, in order.
// fn must not keep the slice.
func (l *Log) forEachModel(tag byte, fn func(model []byte) error) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var seek []byte
	for ok := it.First(); ok; ok = it.SeekGE(seek) {
		model, _, ok := splitModelKey(it.Key())
		if !ok {
			return fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
		}
		seek = append(append(append(seek[:0], tag), model...), 1)
		if err := fn(model); err != nil {
			return err
		}
	}
	return it.Error()
}

// Models returns the models with predictions in the log, in byte order.
func (l *Log) Models() ([]string, error) {
	var ms []string
	err := l.forEachModel(tagPred, func(m []byte) error {
		ms = append(ms, string(m))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("predlog: cannot list models: %w", err)
	}
	return ms, nil
}

// lastStamp returns the largest stamp in the log: the last prediction and
// the last label of every model.
func (l *Log) lastStamp() (int64, error) {
	var last int64
	for _, tag := range []byte{tagPred, tagLabelLog} {
		err := l.forEachModel(tag, func(m []byte) error {
			s, err := l.lastStampOf(tag, m)
			last = max(last, s)
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return last, nil
}

func (l *Log) lastStampOf(tag byte, model []byte) (int64, error) {
	lo := append(append([]byte{tag}, model...), 0)
	hi := append(append([]byte{tag}, model...), 1)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	k := it.Key()[len(lo):]
	if len(k) < 8 {
		return 0, fmt.Errorf("%w: key %q", ErrCorrupt, it.Key())
	}
	return int64(binary.BigEndian.Uint64(k)), nil
}
