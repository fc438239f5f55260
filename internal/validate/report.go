package validate

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The names of the checks a Report lists, in the order the gate runs them.
const (
	CheckSize         = "size"          // the file is within Limits.MaxModelBytes
	CheckParse        = "parse"         // the bytes parse as an ONNX ModelProto
	CheckHeader       = "header"        // ir_version, opset_import and a graph are present
	CheckExternalData = "external_data" // no tensor references an external data file
	CheckTensors      = "tensors"       // declared tensor sizes within limits, data matches dims
	CheckLoad         = "load"          // ONNX Runtime parses the model and reads its signature
	CheckSmoke        = "smoke"         // a run on the first golden pair's inputs, else on zeros, succeeds (see Local)
	CheckGolden       = "golden"        // golden pairs reproduce within the tolerance
	CheckLatency      = "latency"       // p99 of the timed runs is within the budget
	CheckProcess      = "process"       // the child process ran to the end (Run only)
)

// Report is the outcome of the gate and its evidence, as the registry's
// audit log keeps it. It encodes to JSON.
type Report struct {
	// Passed is true when every check ran and passed.
	Passed bool `json:"passed"`
	// Reason says why the model was refused: the first failed check's
	// detail. Empty when Passed.
	Reason string `json:"reason,omitempty"`
	// Digest is the sha256 of the bytes validated (64 hex digits).
	Digest string `json:"digest,omitempty"`
	// Size is the number of bytes validated.
	Size int64 `json:"size"`
	// Checks are the checks that ran, in order, with their verdicts.
	Checks []Check `json:"checks"`
	// Warnings are what a check found that does not refuse the model, such
	// as an ONNX Runtime error on synthesized zero inputs (see Local). Each
	// is also the detail of its check, which passed.
	Warnings []string `json:"warnings,omitempty"`
	// Signature is the model's interface, when known: from ONNX Runtime
	// when it loaded the model, else from the graph ("source" says which).
	Signature *Signature `json:"signature,omitempty"`
	// Latency is what the timed runs measured, when they ran.
	Latency *Latency `json:"latency,omitempty"`
	// ONNXRuntime is the version of ONNX Runtime the model was run with.
	ONNXRuntime string `json:"onnxruntime,omitempty"`
	// Timings says where the time went.
	Timings Timings `json:"timings"`
}

// Check is one check's verdict.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Warning marks a passed check whose detail is a warning.
	Warning bool   `json:"warning,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Signature is a model's interface in Open Inference Protocol terms.
type Signature struct {
	Inputs  []TensorInfo `json:"inputs"`
	Outputs []TensorInfo `json:"outputs"`
	// Source is "onnxruntime" or "graph" (the static checks' reading).
	Source    string `json:"source"`
	Producer  string `json:"producer,omitempty"`
	GraphName string `json:"graph_name,omitempty"`
	// Metadata is the model's metadata_props, values cut to 1 KiB and at
	// most 64 keys, so a hostile model cannot bloat the audit log.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// TensorInfo describes one input or output.
type TensorInfo struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"` // OIP name: FP32, INT64, BYTES, …
	Shape    []int64 `json:"shape"`    // -1 for a dynamic dimension
}

// Latency is what the timed runs measured, on the smoke run's inputs.
type Latency struct {
	Runs   int           `json:"runs"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	Budget time.Duration `json:"budget_ns,omitempty"` // 0: not enforced
}

// Timings break down where the gate spent its time. Zero for steps that did
// not run.
type Timings struct {
	Static  time.Duration `json:"static_ns"`
	Load    time.Duration `json:"load_ns,omitempty"` // ORT load, session creation and warm-up
	Smoke   time.Duration `json:"smoke_ns,omitempty"`
	Golden  time.Duration `json:"golden_ns,omitempty"`
	Latency time.Duration `json:"latency_ns,omitempty"`
	// Total is the whole gate; for Run, the wall time including the
	// child's start.
	Total time.Duration `json:"total_ns"`
}

// pass records a passed check.
func (r *Report) pass(name, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, OK: true, Detail: detail})
}

// warn records a check that passed with a warning.
func (r *Report) warn(name, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, OK: true, Warning: true, Detail: detail})
	r.Warnings = append(r.Warnings, name+": "+detail)
}

// fail records a failed check; the first failure becomes the reason.
func (r *Report) fail(name, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, OK: false, Detail: detail})
	if r.Reason == "" {
		r.Reason = detail
	}
}

// failed reports whether any check has failed so far.
func (r *Report) failed() bool { return r.Reason != "" }

// finish sets Passed from the checks.
func (r *Report) finish() {
	r.Passed = !r.failed() && len(r.Checks) > 0
	for _, c := range r.Checks {
		if !c.OK {
			r.Passed = false
		}
	}
}

// Check returns the named check, if it ran.
func (r *Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// WriteText writes r for a person: the verdict, each check, the signature
// and the latency.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Passed {
		fmt.Fprintf(&b, "PASSED")
	} else {
		fmt.Fprintf(&b, "FAILED: %s", r.Reason)
	}
	fmt.Fprintf(&b, "\n  model   sha256 %s, %d bytes\n", orDash(r.Digest), r.Size)
	for _, c := range r.Checks {
		verdict := "ok  "
		switch {
		case !c.OK:
			verdict = "FAIL"
		case c.Warning:
			verdict = "WARN"
		}
		fmt.Fprintf(&b, "  %s    %-13s %s\n", verdict, c.Name, c.Detail)
	}
	if s := r.Signature; s != nil {
		fmt.Fprintf(&b, "  signature (%s):\n", s.Source)
		for _, t := range s.Inputs {
			fmt.Fprintf(&b, "    input  %s %s %v\n", t.Name, t.Datatype, t.Shape)
		}
		for _, t := range s.Outputs {
			fmt.Fprintf(&b, "    output %s %s %v\n", t.Name, t.Datatype, t.Shape)
		}
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(&b, "  latency p50 %s, p99 %s, max %s over %d runs", l.P50, l.P99, l.Max, l.Runs)
		if l.Budget > 0 {
			fmt.Fprintf(&b, " (budget %s)", l.Budget)
		}
		b.WriteByte('\n')
	}
	if r.ONNXRuntime != "" {
		fmt.Fprintf(&b, "  onnxruntime %s\n", r.ONNXRuntime)
	}
	fmt.Fprintf(&b, "  took %s\n", r.Timings.Total.Round(time.Microsecond))
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sizeString prints a byte count for a person: "364 bytes", "256 MiB",
// "93.1 GiB".
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	div, i := int64(unit), 0
	for n/div >= unit && i < len(units)-1 {
		div *= unit
		i++
	}
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(div), units[i])
}
