package validate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelgate/modelgate/runtime"
)

// Local runs the whole gate in this process: the static checks, then ONNX
// Runtime — load, a smoke run (see smokeRun: the first golden pair's
// inputs, else zeros whose ORT error is only a warning), the golden pairs,
// and LatencyRuns timed runs against the budget. It loads
// untrusted bytes into ONNX Runtime, so only `modelgate validate` — the
// child Run starts, under a memory limit and a timeout — should call it.
//
// The Report says whether the model passed. The error is for a gate that
// could not run at all (ONNX Runtime cannot be loaded from opts.ORTLib,
// malformed golden pairs): that is not the model's fault. Binary, Timeout
// and MaxMemory are ignored.
func Local(onnx []byte, opts Options) (*Report, error) {
	start := time.Now()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fillGate()
	r, _ := static(onnx, opts.Limits)
	defer func() {
		r.finish()
		r.Timings.Total = time.Since(start)
	}()
	if r.failed() {
		return r, nil
	}
	if err := runtime.Init(opts.ORTLib); err != nil {
		return r, fmt.Errorf("validate: %w", err)
	}
	r.ONNXRuntime = runtime.Version()

	t := time.Now()
	sig, err := runtime.Introspect(onnx)
	if err != nil {
		r.Timings.Load = time.Since(t)
		r.fail(CheckLoad, "ONNX Runtime cannot load the model: "+trimErr(err))
		return r, nil
	}
	r.Signature = signatureOf(sig)
	// Introspect created and dropped a session; Load creates the one the
	// checks run on. Its warm-up on zeros no longer fails it (see
	// runtime.Load): the smoke run below judges the inputs.
	m, err := runtime.Load(onnx, runtime.Config{
		Sessions:       1,
		IntraOpThreads: opts.IntraOpThreads,
		InterOpThreads: 1,
		QueueTimeout:   time.Minute,
	})
	r.Timings.Load = time.Since(t)
	if err != nil {
		r.fail(CheckLoad, "ONNX Runtime cannot create a session for the model: "+trimErr(err))
		return r, nil
	}
	defer m.Close()
	r.pass(CheckLoad, loadDetail(sig))

	t = time.Now()
	smoke := smokeRun(r, m, sig, opts.Golden)
	r.Timings.Smoke = time.Since(t)
	if r.failed() {
		return r, nil
	}

	if len(opts.Golden) > 0 {
		t = time.Now()
		golden(r, m, opts.Golden, opts.Tolerance)
		r.Timings.Golden = time.Since(t)
		if r.failed() {
			return r, nil
		}
	}

	t = time.Now()
	if smoke != nil {
		latency(r, m, smoke, opts.LatencyRuns, opts.LatencyBudget)
	} else {
		r.pass(CheckLatency, "not measured: the model refused zero inputs and no golden pairs were registered; register golden pairs to measure it")
	}
	r.Timings.Latency = time.Since(t)
	return r, nil
}

// smokeRun is the smoke check. With golden pairs it runs the first pair's
// inputs, which must succeed: they are inputs the registrant says are
// valid. Without, it runs zeros (dynamic dimensions 1); zeros are no valid
// input for a model whose inputs are shapes, scales, split sizes, divisors,
// steps or axes, so ONNX Runtime refusing the run (a *runtime.RunError) is
// a warning in the report, not a refusal. Running out of memory still
// fails, like the crashes and timeouts Run catches around the child, and so
// does any error of the runtime's own. It returns the call
// the latency runs repeat, nil when there is none that runs.
func smokeRun(r *Report, m *runtime.Model, sig *runtime.Signature, pairs []GoldenPair) *runtime.Call {
	if len(pairs) > 0 {
		c, err := goldenCall(&pairs[0], 0)
		if err != nil {
			r.fail(CheckSmoke, err.Error())
			return nil
		}
		if err := m.Infer(c); err != nil {
			r.fail(CheckSmoke, "the smoke run on golden pair 0's inputs failed: "+trimErr(err))
			return nil
		}
		r.pass(CheckSmoke, "golden pair 0's inputs "+tensorsString(c.Inputs)+" gave "+tensorsString(c.Outputs))
		return c
	}
	c, err := zeroCall(sig)
	if err == nil {
		err = m.Infer(c)
	}
	var runErr *runtime.RunError
	switch {
	case err == nil:
		r.pass(CheckSmoke, "zero inputs "+tensorsString(c.Inputs)+" gave "+tensorsString(c.Outputs))
		return c
	case outOfMemory(err):
		r.fail(CheckSmoke, "the smoke run on zero inputs (dynamic dimensions 1) ran out of memory: "+trimErr(err))
	case !errors.As(err, &runErr):
		// Not ORT judging the values: the runtime cannot serve the model
		// (an output type it cannot read back), whatever the inputs.
		r.fail(CheckSmoke, "the smoke run on zero inputs (dynamic dimensions 1) failed: "+trimErr(err))
	default:
		w := "the smoke run on zero inputs (dynamic dimensions 1) failed, which is not held against the model (zeros are no valid input for every model; register golden pairs to smoke-test real ones): " + trimErr(err)
		r.warn(CheckSmoke, w)
	}
	return nil
}

// outOfMemory reports an ONNX Runtime error that is an allocation refused:
// under the child's RLIMIT_AS, ORT's arena returns "Failed to allocate
// memory" as an ordinary status rather than crashing, and a model that
// allocates gigabytes is what the gate keeps from traffic.
func outOfMemory(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Failed to allocate memory") || strings.Contains(s, "bad_alloc") ||
		strings.Contains(s, "out of memory")
}

// goldenCall builds a call on pair i's inputs.
func goldenCall(p *GoldenPair, i int) (*runtime.Call, error) {
	c := runtime.NewCall()
	for j := range p.Inputs {
		in, err := p.Inputs[j].tensor(i, "inputs", j, true)
		if err != nil {
			return nil, err
		}
		c.AddInput().CopyFrom(in)
	}
	return c, nil
}

func loadDetail(sig *runtime.Signature) string {
	return fmt.Sprintf("ONNX Runtime loaded the model: %d inputs, %d outputs", len(sig.Inputs), len(sig.Outputs))
}

// trimErr drops the package prefixes of runtime errors: the check name
// already says where the failure is.
func trimErr(err error) string {
	s := err.Error()
	for _, p := range []string{"runtime: ", "cannot load model: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// zeroCall builds a call on zeros (empty strings for BYTES) with every
// dynamic dimension 1.
func zeroCall(sig *runtime.Signature) (*runtime.Call, error) {
	c := runtime.NewCall()
	for _, s := range sig.Inputs {
		t := c.AddInput()
		t.Name, t.DataType = s.Name, s.DataType
		for _, d := range s.Shape {
			t.Shape = append(t.Shape, max(d, 1))
		}
		n := runtime.NumElements(t.Shape)
		if n < 0 {
			return nil, fmt.Errorf("input %q has shape %v, too large for a smoke run", s.Name, s.Shape)
		}
		if s.DataType == runtime.Bytes {
			t.Strings = make([]string, n)
		} else {
			t.Data = make([]byte, n*int64(s.DataType.Size()))
		}
	}
	return c, nil
}

// golden runs every pair and compares the outputs it names.
func golden(r *Report, m *runtime.Model, pairs []GoldenPair, tol float64) {
	sig := m.Signature()
	var worst float64
	compared := 0
	for i := range pairs {
		p := &pairs[i]
		c, err := goldenCall(p, i)
		if err != nil {
			r.fail(CheckGolden, err.Error())
			return
		}
		if err := m.Infer(c); err != nil {
			r.fail(CheckGolden, fmt.Sprintf("golden pair %d: the model cannot run its inputs: %s", i, trimErr(err)))
			return
		}
		for j := range p.Outputs {
			g := &p.Outputs[j]
			k := sig.OutputIndex(g.Name)
			if k < 0 {
				r.fail(CheckGolden, fmt.Sprintf("golden pair %d: the model has no output %q", i, g.Name))
				return
			}
			want, err := g.tensor(i, "outputs", j, false)
			if err != nil {
				r.fail(CheckGolden, err.Error())
				return
			}
			d, err := compareOutput(&c.Outputs[k], want, g.Shape != nil, tol)
			if err != nil {
				r.fail(CheckGolden, fmt.Sprintf("golden pair %d output %q %s", i, g.Name, err))
				return
			}
			worst = max(worst, d)
			compared++
		}
	}
	r.pass(CheckGolden, fmt.Sprintf("%d pairs, %d outputs within tolerance %g (largest difference %.3g)", len(pairs), compared, tol, worst))
}

// latency times runs calls of c and checks the p99 against budget.
func latency(r *Report, m *runtime.Model, c *runtime.Call, runs int, budget time.Duration) {
	d := make([]time.Duration, 0, runs)
	for range runs {
		t := time.Now()
		if err := m.Infer(c); err != nil {
			r.fail(CheckLatency, "a timed run failed: "+trimErr(err))
			return
		}
		d = append(d, time.Since(t))
	}
	slices.Sort(d)
	pct := func(p int) time.Duration { return d[(len(d)*p+99)/100-1] }
	l := &Latency{Runs: runs, P50: pct(50), P99: pct(99), Max: d[len(d)-1], Budget: budget}
	r.Latency = l
	switch {
	case budget <= 0:
		r.pass(CheckLatency, fmt.Sprintf("p99 %s over %d runs (no budget set)", l.P99, runs))
	case l.P99 > budget:
		r.fail(CheckLatency, fmt.Sprintf("p99 latency %s over %d runs is over the budget of %s", l.P99, runs, budget))
	default:
		r.pass(CheckLatency, fmt.Sprintf("p99 %s over %d runs, within the budget of %s", l.P99, runs, budget))
	}
}

func tensorsString(ts []runtime.Tensor) string {
	parts := make([]string, len(ts))
	for i := range ts {
		parts[i] = fmt.Sprintf("%s %s %v", ts[i].Name, ts[i].DataType, ts[i].Shape)
	}
	return strings.Join(parts, ", ")
}

// signatureOf converts ONNX Runtime's reading of the signature.
func signatureOf(sig *runtime.Signature) *Signature {
	s := &Signature{Source: "onnxruntime", Producer: sig.Metadata.Producer, GraphName: sig.Metadata.GraphName,
		Inputs: make([]TensorInfo, len(sig.Inputs)), Outputs: make([]TensorInfo, len(sig.Outputs))}
	for i, t := range sig.Inputs {
		s.Inputs[i] = TensorInfo{Name: t.Name, Datatype: t.DataType.String(), Shape: slices.Clone(t.Shape)}
	}
	for i, t := range sig.Outputs {
		s.Outputs[i] = TensorInfo{Name: t.Name, Datatype: t.DataType.String(), Shape: slices.Clone(t.Shape)}
	}
	keys := make([]string, 0, len(sig.Metadata.Custom))
	for k := range sig.Metadata.Custom {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.addMetadata(k, sig.Metadata.Custom[k])
	}
	return s
}
