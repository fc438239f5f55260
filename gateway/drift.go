package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/float16"
	"github.com/modelgate/modelgate/runtime"
)

// versionDrift is one served version's drift state: streaming windows over
// its inputs and score once it has a reference profile, a bootstrap
// collecting the first rows until then. Observing is lock-free and
// allocation-free; it never fails a request.
type versionDrift struct {
	model, version string
	inputs         []int // signature inputs whose columns make a row, in order
	widths         []int // their row widths
	width          int
	output, col    int // the score: signature output and column
	outWidth       int

	windows  atomic.Pointer[drift.Windows]
	boot     *drift.Bootstrap
	booted   atomic.Bool
	onBooted func(*versionDrift, *drift.Profile) // records the bootstrapped reference
	err      atomic.Pointer[string]              // why drift stopped (a broken profile)
	wcfg     drift.WindowConfig
}

// driftLayout decides what a row is for a signature: every numeric input
// with a dynamic first (batch) dimension and fixed others, and the first
// numeric output's first column as the score. It explains a refusal.
func driftLayout(sig *runtime.Signature) (ins, widths []int, out, outWidth int, err error) {
	for i, in := range sig.Inputs {
		w, ok := rowWidth(in)
		if !ok {
			continue
		}
		ins, widths = append(ins, i), append(widths, w)
	}
	if len(ins) == 0 {
		return nil, nil, 0, 0, errors.New("no numeric input with a batch dimension and a fixed row width")
	}
	for j, o := range sig.Outputs {
		if w, ok := rowWidth(o); ok {
			return ins, widths, j, w, nil
		}
	}
	return nil, nil, 0, 0, errors.New("no numeric output with a batch dimension")
}

func rowWidth(t runtime.TensorSpec) (int, bool) {
	if t.DataType == runtime.Bytes || t.DataType == runtime.Invalid || len(t.Shape) == 0 || t.Shape[0] != -1 {
		return 0, false
	}
	w := int64(1)
	for _, d := range t.Shape[1:] {
		if d < 0 {
			return 0, false
		}
		w *= d
	}
	return int(w), w > 0 && w <= 4096
}

// newVersionDrift sets up drift for a loaded version: with profile (from
// the registry) it observes at once; without, it bootstraps a reference
// from the first bootstrapRows rows and then calls onBooted.
func newVersionDrift(model, version string, sig *runtime.Signature, profile *drift.Profile, bootstrapRows int, wcfg drift.WindowConfig, onBooted func(*versionDrift, *drift.Profile)) (*versionDrift, error) {
	ins, widths, out, outWidth, err := driftLayout(sig)
	if err != nil {
		return nil, err
	}
	d := &versionDrift{model: model, version: version, inputs: ins, widths: widths, output: out, outWidth: outWidth, onBooted: onBooted, wcfg: wcfg}
	for _, w := range widths {
		d.width += w
	}
	if profile != nil {
		if profile.RowWidth() != d.width {
			return nil, fmt.Errorf("the reference profile's rows are %d wide, the model's %d", profile.RowWidth(), d.width)
		}
		w, err := drift.NewWindows(profile, wcfg)
		if err != nil {
			return nil, err
		}
		d.windows.Store(w)
		return d, nil
	}
	opts := drift.ProfileOptions{Output: sig.Outputs[out].Name}
	for k, i := range ins {
		opts.Inputs = append(opts.Inputs, drift.Input{Name: sig.Inputs[i].Name, Width: widths[k]})
	}
	if names := sig.Metadata.Custom["feature_names"]; names != "" && len(ins) == 1 {
		if n := strings.Split(names, ","); len(n) == d.width {
			opts.Names = n
		}
	}
	if d.boot, err = drift.NewBootstrap(bootstrapRows, opts); err != nil {
		return nil, err
	}
	return d, nil
}

// observe feeds every row of a call to the windows (or the bootstrap). It
// converts non-FP32 columns into scratch, which the caller owns.
func (d *versionDrift) observe(c *runtime.Call, at time.Time, scratch *[]float32) {
	w := d.windows.Load()
	if w == nil && (d.boot == nil || d.booted.Load()) {
		return
	}
	first := &c.Inputs[orderOf(c, d.inputs[0])]
	if len(first.Shape) == 0 {
		return
	}
	rows := int(first.Shape[0])
	out := &c.Outputs[d.output]
	for r := 0; r < rows; r++ {
		row := d.row(c, r, scratch)
		score := element(out, r*d.outWidth+d.col)
		if w != nil {
			_ = w.ObserveAt(at, row, score)
			continue
		}
		full, err := d.boot.Observe(row, score)
		if err == nil && full && d.booted.CompareAndSwap(false, true) {
			go d.finishBootstrap()
			return
		}
	}
}

// orderOf finds which of the call's inputs feeds signature input i: Bind
// already matched them, by name.
func orderOf(c *runtime.Call, i int) int { return c.InputOrder(i) }

// row returns row r of the call's monitored inputs as float32s: a view of
// the request's bytes for one FP32 input, else a conversion into scratch.
func (d *versionDrift) row(c *runtime.Call, r int, scratch *[]float32) []float32 {
	if len(d.inputs) == 1 {
		t := &c.Inputs[orderOf(c, d.inputs[0])]
		if t.DataType == runtime.FP32 {
			all := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), len(t.Data)/4)
			return all[r*d.width : (r+1)*d.width]
		}
	}
	buf := (*scratch)[:0]
	for k, i := range d.inputs {
		t := &c.Inputs[orderOf(c, i)]
		for j := 0; j < d.widths[k]; j++ {
			buf = append(buf, element(t, r*d.widths[k]+j))
		}
	}
	*scratch = buf
	return buf
}

var le = binary.LittleEndian

// element reads element i of a numeric tensor as float32.
func element(t *runtime.Tensor, i int) float32 {
	b := t.Data
	switch t.DataType {
	case runtime.FP32:
		return math.Float32frombits(le.Uint32(b[4*i:]))
	case runtime.FP64:
		return float32(math.Float64frombits(le.Uint64(b[8*i:])))
	case runtime.Int64:
		return float32(int64(le.Uint64(b[8*i:])))
	case runtime.Int32:
		return float32(int32(le.Uint32(b[4*i:])))
	case runtime.Uint8, runtime.Bool:
		return float32(b[i])
	case runtime.Int8:
		return float32(int8(b[i]))
	case runtime.Int16:
		return float32(int16(le.Uint16(b[2*i:])))
	case runtime.Uint16:
		return float32(le.Uint16(b[2*i:]))
	case runtime.Uint32:
		return float32(le.Uint32(b[4*i:]))
	case runtime.Uint64:
		return float32(le.Uint64(b[8*i:]))
	case runtime.FP16:
		return float16.ToFloat32(le.Uint16(b[2*i:]))
	case runtime.BF16:
		return float16.BFloat16ToFloat32(le.Uint16(b[2*i:]))
	}
	return 0
}

// finishBootstrap turns the collected rows into the reference and starts
// observing against it.
func (d *versionDrift) finishBootstrap() {
	p, err := d.boot.Profile()
	if err == nil {
		var w *drift.Windows
		if w, err = drift.NewWindows(p, d.wcfg); err == nil {
			d.windows.Store(w)
			if d.onBooted != nil {
				d.onBooted(d, p)
			}
			return
		}
	}
	msg := "cannot build the bootstrapped reference: " + err.Error()
	d.err.Store(&msg)
}

// status says why a version has no drift report yet.
func (d *versionDrift) status() string {
	if e := d.err.Load(); e != nil {
		return *e
	}
	if d.boot != nil && d.windows.Load() == nil {
		return fmt.Sprintf("the reference is being bootstrapped from scored rows: %d so far", d.boot.Rows())
	}
	return ""
}

// report compares the horizon's traffic with the reference.
func (d *versionDrift) report(horizon time.Duration, th drift.Thresholds) (*drift.Report, error) {
	w := d.windows.Load()
	if w == nil {
		return nil, errors.New(d.status())
	}
	return drift.Compare(w.Profile(), w.Snapshot(horizon), th)
}
