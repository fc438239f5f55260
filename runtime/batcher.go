package runtime

import (
	"fmt"
	"sync"
	"time"
)

// batcher is the dynamic batcher of one model: a bounded queue drained by
// one executor goroutine per session. One executor at a time gathers: it
// takes the oldest call, then keeps taking calls until the batch holds
// MaxBatch rows or the first call has waited MaxDelay, hands the gathering
// role on, and runs the batch as one ORT Run stacked along the first
// dimension. Gathering one batch at a time matters: with every executor
// gathering at once, N executors split the waiting calls N ways and then all
// sit out their delay on a queue that only refills when they finish. A call
// is never split across batches (one larger than MaxBatch runs alone) and
// never waits for a batch past its MaxDelay.
type batcher struct {
	m     *Model
	queue chan *Call
	quit  chan struct{}
	wg    sync.WaitGroup

	gather sync.Mutex // held by the executor gathering the next batch
	carry  *Call      // a call that did not fit the last batch: starts the next
}

func newBatcher(m *Model) *batcher {
	b := &batcher{m: m, queue: make(chan *Call, m.cfg.MaxQueue), quit: make(chan struct{})}
	for _, w := range m.all {
		b.wg.Add(1)
		go b.loop(w)
	}
	return b
}

// submit queues c and waits for its batch to run.
func (b *batcher) submit(c *Call) error {
	first := &c.Inputs[c.order[0]]
	c.rows = first.Shape[0]
	c.enq = time.Now()
	b.m.waitN.Add(1)
	select {
	case b.queue <- c:
	default:
		b.m.waitN.Add(-1)
		return ErrQueueFull
	}
	<-c.done
	return c.err
}

// stop ends the executors. Only called once no call can be queued.
func (b *batcher) stop() {
	close(b.quit)
	b.wg.Wait()
}

func (b *batcher) loop(w *worker) {
	defer b.wg.Done()
	sig := &b.m.sig
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]*Call, 0, min(b.m.cfg.MaxBatch, 256))
	ins := make([]Tensor, len(sig.Inputs))
	outs := make([]Tensor, len(sig.Outputs))
	order := make([]int, len(sig.Inputs))
	for i := range order {
		order[i] = i
	}
	for {
		var rows int64
		var ok bool
		batch, rows, ok = b.next(batch[:0], timer)
		if !ok {
			return
		}
		b.run(w, batch, rows, ins, order, outs)
	}
}

// next gathers one batch. It reports false when the batcher stops.
func (b *batcher) next(batch []*Call, timer *time.Timer) ([]*Call, int64, bool) {
	b.gather.Lock()
	defer b.gather.Unlock()
	maxRows := int64(b.m.cfg.MaxBatch)
	first := b.carry
	b.carry = nil
	if first == nil {
		select {
		case first = <-b.queue:
			b.m.waitN.Add(-1)
		case <-b.quit:
			return batch, 0, false
		}
	}
	batch = append(batch, first)
	rows := first.rows
	if rows >= maxRows {
		return batch, rows, true
	}
	timer.Reset(time.Until(first.enq.Add(b.m.cfg.MaxDelay)))
	defer timer.Stop()
	for rows < maxRows {
		select {
		case c := <-b.queue:
			b.m.waitN.Add(-1)
			if rows+c.rows > maxRows || !stackable(first, c) {
				b.carry = c
				return batch, rows, true
			}
			batch = append(batch, c)
			rows += c.rows
		case <-timer.C:
			return batch, rows, true
		}
	}
	return batch, rows, true
}

// stackable reports whether c's inputs differ from first's only in the first
// dimension.
func stackable(first, c *Call) bool {
	for i, j := range first.order {
		a, b := first.Inputs[j].Shape, c.Inputs[c.order[i]].Shape
		if len(a) != len(b) {
			return false
		}
		for k := 1; k < len(a); k++ {
			if a[k] != b[k] {
				return false
			}
		}
	}
	return true
}

func (b *batcher) run(w *worker, batch []*Call, rows int64, ins []Tensor, order []int, outs []Tensor) {
	timeout := b.m.cfg.QueueTimeout
	now := time.Now()
	live := batch[:0]
	for _, c := range batch {
		if now.Sub(c.enq) > timeout {
			c.err = ErrTimeout
			rows -= c.rows
			c.done <- struct{}{}
			continue
		}
		live = append(live, c)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	if b.m.cfg.OnBatch != nil {
		b.m.cfg.OnBatch(len(batch), int(rows))
	}
	if len(batch) == 1 {
		c := batch[0]
		c.err = w.run(c.Inputs, c.order, c.Outputs)
		c.done <- struct{}{}
		return
	}
	sig := &b.m.sig
	first := batch[0]
	for i := range ins {
		t := &ins[i]
		src := &first.Inputs[first.order[i]]
		t.Name, t.DataType = src.Name, src.DataType
		t.Shape = append(t.Shape[:0], rows)
		t.Shape = append(t.Shape, src.Shape[1:]...)
		t.Data, t.Strings = t.Data[:0], t.Strings[:0]
		for _, c := range batch {
			in := &c.Inputs[c.order[i]]
			t.Data = append(t.Data, in.Data...)
			t.Strings = append(t.Strings, in.Strings...)
		}
	}
	err := w.run(ins, order, outs)
	for j := range outs {
		if err == nil && (len(outs[j].Shape) == 0 || outs[j].Shape[0] != rows) {
			err = fmt.Errorf("runtime: output %q has shape %v for a batch of %d rows: the model does not keep the batch dimension, turn batching off for it", sig.Outputs[j].Name, outs[j].Shape, rows)
		}
	}
	var off int64
	for _, c := range batch {
		c.err = err
		if err == nil {
			for j := range outs {
				split(&c.Outputs[j], &outs[j], rows, off, c.rows)
			}
		}
		off += c.rows
		c.done <- struct{}{}
	}
}

// split copies rows [off, off+n) of a batch output of total rows into dst.
func split(dst, src *Tensor, total, off, n int64) {
	dst.Name, dst.DataType = src.Name, src.DataType
	dst.Shape = append(dst.Shape[:0], n)
	dst.Shape = append(dst.Shape, src.Shape[1:]...)
	if src.DataType == Bytes {
		per := int64(len(src.Strings)) / total
		dst.Strings = append(dst.Strings[:0], src.Strings[off*per:(off+n)*per]...)
		dst.Data = dst.Data[:0]
		return
	}
	per := int64(len(src.Data)) / total
	dst.Data = append(dst.Data[:0], src.Data[off*per:(off+n)*per]...)
	dst.Strings = dst.Strings[:0]
}
