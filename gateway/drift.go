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
// sampling its rows until then (the first ones, or a reservoir over a
// period, which takes a mutex per row while it lasts). Observing is
// allocation-free and never fails a request; the hard constraints beside
// it may refuse one.
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

	// columns are the row's columns as input[index], labels their
	// feature names when the model declares them (else the same).
	columns, labels []string
	// rules are the model's hard constraints on rows (nil: none, the
	// default); the scoring path checks them before answering.
	rules atomic.Pointer[rowRules]
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
// the registry) it observes at once; without, it bootstraps a reference as
// boot says (its Profile options are filled from the signature) and then
// calls onBooted.
func newVersionDrift(model, version string, sig *runtime.Signature, profile *drift.Profile, boot drift.BootstrapConfig, wcfg drift.WindowConfig, onBooted func(*versionDrift, *drift.Profile)) (*versionDrift, error) {
	ins, widths, out, outWidth, err := driftLayout(sig)
	if err != nil {
		return nil, err
	}
	d := &versionDrift{model: model, version: version, inputs: ins, widths: widths, output: out, outWidth: outWidth, onBooted: onBooted, wcfg: wcfg}
	for _, w := range widths {
		d.width += w
	}
	var names []string
	if n := sig.Metadata.Custom["feature_names"]; n != "" && len(ins) == 1 {
		names = strings.Split(n, ",")
	}
	d.columns, d.labels = featureLabels(sig, ins, widths, names)
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
	boot.Profile = opts
	if boot.Now == nil {
		boot.Now = wcfg.Now
	}
	if d.boot, err = drift.NewBootstrapConfig(boot); err != nil {
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

// errStopped is why drift stopped for a version (a bootstrapped
// reference that cannot be built), or nil.
func (d *versionDrift) errStopped() error {
	if e := d.err.Load(); e != nil {
		return errors.New(*e)
	}
	return nil
}

// bootstrapping returns the bootstrap's progress while the reference is
// being collected (ok false once the windows exist, or without bootstrap).
func (d *versionDrift) bootstrapping() (p drift.Progress, ok bool) {
	if d.boot == nil || d.windows.Load() != nil {
		return drift.Progress{}, false
	}
	return d.boot.Progress(), true
}

// StatusBootstrapping is the drift API's status while a version's
// reference is being sampled from its traffic: nothing can be judged yet,
// and that is not an error.
const StatusBootstrapping = "bootstrapping"

// DriftRun is one judged run of pooled windows, without its report.
type DriftRun struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Windows    int       `json:"windows"`
	Rows       int64     `json:"rows"`
	Status     string    `json:"status"`
	DriftShare float64   `json:"drift_share"`
}

// DriftView is the drift API's answer about one version (GET
// /api/v1/models/{m}/drift): where its reference stands, and the
// judgement the lifecycle controller makes of it — the same pooled runs
// under the same policy — with the newest run's report (or, when a window
// was asked for, the report of that horizon) inline.
type DriftView struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
	Node    string `json:"node"`
	// Status is StatusBootstrapping, or the judgement's: no_data,
	// not_enough_data, no_drift, drift. Summary says it for a person.
	Status  string `json:"status"`
	Summary string `json:"summary"`
	// Bootstrap is the reference's progress while it is being sampled.
	Bootstrap *drift.Progress `json:"bootstrap,omitempty"`
	// View is ViewCluster (the leader's merge of every pushing node's
	// windows, listed in Nodes) or ViewNode (Node's own windows); absent
	// on a node that is not in a cluster.
	View  string      `json:"view,omitempty"`
	Nodes []StatsNode `json:"nodes,omitempty"`
	// Policy is the judging policy in one line.
	Policy string `json:"policy"`
	// Window is the horizon asked for (?window=); empty for the judgement
	// over pooled runs.
	Window string `json:"window,omitempty"`
	// Runs are the judgement's runs, oldest first; Alerts what it raises.
	Runs   []DriftRun    `json:"runs,omitempty"`
	Alerts []drift.Alert `json:"alerts"`
	// The report's fields (count, features with p-values and data
	// quality, drift_share, quality) follow inline; absent while
	// bootstrapping.
	*drift.Report
}

// view judges d under pol: the pooled runs drift.Evaluate cuts (horizon
// 0), or the last horizon merged into one report. With merged set (the
// cluster's windows on the leader) those are judged instead of d's own.
func (d *versionDrift) view(pol drift.Policy, horizon time.Duration, merged *drift.Windows) (*DriftView, error) {
	if err := d.errStopped(); err != nil {
		return nil, err
	}
	v := &DriftView{Policy: pol.String(), Alerts: []drift.Alert{}}
	if p, ok := d.bootstrapping(); ok {
		v.Status, v.Bootstrap = StatusBootstrapping, &p
		v.Summary = "bootstrapping the reference: " + p.String()
		return v, nil
	}
	w := d.windows.Load()
	if w == nil {
		return nil, errors.New("drift is not monitored for this version")
	}
	if merged != nil {
		w = merged
	}
	if horizon > 0 {
		rep, err := drift.ComparePolicy(w.Profile(), w.Snapshot(horizon), pol)
		if err != nil {
			return nil, err
		}
		v.Window, v.Report, v.Status = horizon.String(), rep, rep.Status
		v.Summary = summary(rep, "over the last "+horizon.String())
		return v, nil
	}
	ev, err := drift.Evaluate(w, pol)
	if err != nil {
		return nil, err
	}
	v.Status, v.Report = ev.Status, ev.Latest()
	if ev.Alerts != nil {
		v.Alerts = ev.Alerts
	}
	for _, r := range ev.Runs {
		v.Runs = append(v.Runs, DriftRun{From: r.From, To: r.To, Windows: r.Windows, Rows: r.Report.Rows, Status: r.Report.Status, DriftShare: r.Report.DriftShare})
	}
	if v.Report == nil {
		v.Summary = "no data: no closed drift window yet"
		return v, nil
	}
	last := ev.Runs[len(ev.Runs)-1]
	v.Summary = summary(v.Report, fmt.Sprintf("in the newest run of %d window(s) to %s", last.Windows, last.To.UTC().Format(time.RFC3339)))
	if len(ev.Alerts) > 0 {
		v.Summary += fmt.Sprintf("; %d alert(s) sustained over %d runs", len(ev.Alerts), len(ev.Runs))
	}
	return v, nil
}

// summary says a report's verdict in one line.
func summary(r *drift.Report, where string) string {
	switch r.Status {
	case drift.StatusNoData:
		return "no data: no rows " + where
	case drift.StatusNotEnoughData:
		return fmt.Sprintf("not enough data: %d of the %d rows a judgement needs, %s", r.Rows, r.MinCount, where)
	case drift.StatusDrift:
		return fmt.Sprintf("DRIFT: %d of %d features drifted (share %.2f) in %d rows %s", r.DriftedFeatures, r.JudgedFeatures, r.DriftShare, r.Rows, where)
	}
	return fmt.Sprintf("no drift: %d of %d features drifted in %d rows %s", r.DriftedFeatures, r.JudgedFeatures, r.Rows, where)
}
