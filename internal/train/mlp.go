package train

import (
	"fmt"
	"math"
)

// Dense is a fully connected layer: out = in·W + B, with W stored row-major
// as In×Out (W[i*Out+j] joins input i to output j), the layout of an ONNX
// MatMul initializer of shape [In, Out].
type Dense struct {
	In, Out int
	W       []float32
	B       []float32
}

// MLP is a fitted multi-layer perceptron over standardised features:
// ReLU hidden layers, then one sigmoid output unit.
type MLP struct {
	Scaler Standardizer
	Hidden []Dense // ReLU, input side first
	Output Dense   // Out == 1, sigmoid
}

// Features returns the number of inputs the model takes.
func (m *MLP) Features() int { return len(m.Scaler.Mean) }

// predictStack is the widest network (sum of hidden widths plus input)
// Predict evaluates without allocating.
const predictStack = 1024

// Predict returns the positive-class probability of row, which must have
// Features() values. It standardises in float32 like the ONNX graph and
// computes the layers in float64. It allocates only for networks wider than
// predictStack in total.
func (m *MLP) Predict(row []float32) float32 {
	need := m.Features()
	for _, l := range m.Hidden {
		need += l.Out
	}
	var stack [predictStack]float64
	buf := stack[:]
	if need > len(buf) {
		buf = make([]float64, need)
	}
	in := buf[:m.Features()]
	buf = buf[len(in):]
	mean, std := m.Scaler.Mean, m.Scaler.Std
	for i, v := range row[:len(in)] {
		in[i] = float64((v - mean[i]) / std[i])
	}
	for _, l := range m.Hidden {
		out := buf[:l.Out]
		buf = buf[l.Out:]
		l.forward(in, out)
		for j, v := range out {
			out[j] = max(v, 0)
		}
		in = out
	}
	var z [1]float64
	m.Output.forward(in, z[:])
	return float32(sigmoid(z[0]))
}

// forward computes out = in·W + B.
func (l *Dense) forward(in, out []float64) {
	for j := range out {
		out[j] = float64(l.B[j])
	}
	for i, x := range in {
		if x == 0 {
			continue // ReLU zeros and one-hot slots are common
		}
		w := l.W[i*l.Out : (i+1)*l.Out]
		for j := range out {
			out[j] += x * float64(w[j])
		}
	}
}

// layerShape locates one layer's parameters in the flat parameter vector.
type layerShape struct {
	in, out    int
	wOff, bOff int
}

// FitMLP fits an MLP to d by mini-batch Adam on the mean log-loss plus
// weight decay. Hidden weights start He-normal and output weights
// Glorot-normal, drawn from cfg.Seed; the output bias starts at the log-odds
// of the positive rate.
func FitMLP(d Data, cfg MLPConfig) (*MLP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: cannot fit MLP: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("train: cannot fit MLP: %w", err)
	}
	cfg = cfg.withDefaults()
	scaler := FitStandardizer(d)
	x := scaler.applyAll(d)
	f, n := d.Features, d.Rows()
	rng := newSource(cfg.Seed)

	// Lay out every layer's W then B in one vector, so one Adam steps them all.
	widths := append(append([]int{f}, cfg.Hidden...), 1)
	layers := make([]layerShape, len(widths)-1)
	size := 0
	for l := range layers {
		in, out := widths[l], widths[l+1]
		layers[l] = layerShape{in: in, out: out, wOff: size, bOff: size + in*out}
		size += in*out + out
	}
	params := make([]float64, size)
	for l, s := range layers {
		sd := math.Sqrt(2 / float64(s.in)) // He, for ReLU
		if l == len(layers)-1 {
			sd = math.Sqrt(1 / float64(s.in))
		}
		for k := range s.in * s.out {
			params[s.wOff+k] = sd * rng.normal()
		}
	}
	rate := d.positiveRate()
	params[layers[len(layers)-1].bOff] = math.Log(rate / (1 - rate))

	// acts[l] is the input of layer l (acts[0] the standardised row);
	// deltas[l] the loss gradient at layer l's pre-activation output.
	acts := make([][]float64, len(widths))
	deltas := make([][]float64, len(widths))
	for l, w := range widths {
		acts[l] = make([]float64, w)
		deltas[l] = make([]float64, w)
	}
	grad := make([]float64, size)
	opt := newAdam(size, cfg.LearningRate)
	order := identity(n)
	batches := (n + cfg.BatchSize - 1) / cfg.BatchSize
	total := cfg.Epochs * batches
	step := 0
	for range cfg.Epochs {
		rng.shuffle(order)
		for lo := 0; lo < n; lo += cfg.BatchSize {
			batch := order[lo:min(lo+cfg.BatchSize, n)]
			clear(grad)
			for _, r := range batch {
				for i, v := range x[r*f : (r+1)*f] {
					acts[0][i] = float64(v)
				}
				for l, s := range layers {
					forwardFlat(params, s, acts[l], acts[l+1])
					if l < len(layers)-1 {
						for j, v := range acts[l+1] {
							acts[l+1][j] = max(v, 0)
						}
					}
				}
				top := len(layers)
				e := sigmoid(acts[top][0])
				if d.Y[r] {
					e--
				}
				deltas[top][0] = e
				for l := top - 1; l >= 0; l-- {
					backwardFlat(params, grad, layers[l], acts[l], deltas[l+1], deltas[l], l > 0)
				}
			}
			inv := 1 / float64(len(batch))
			for _, s := range layers {
				for k := s.wOff; k < s.bOff; k++ {
					grad[k] = grad[k]*inv + cfg.L2*params[k]
				}
				for k := s.bOff; k < s.bOff+s.out; k++ {
					grad[k] *= inv
				}
			}
			opt.step(params, grad, lrSchedule(step, total))
			step++
		}
	}

	m := &MLP{Scaler: scaler}
	for l, s := range layers {
		dense := Dense{In: s.in, Out: s.out, W: make([]float32, s.in*s.out), B: make([]float32, s.out)}
		for k := range dense.W {
			dense.W[k] = float32(params[s.wOff+k])
		}
		for k := range dense.B {
			dense.B[k] = float32(params[s.bOff+k])
		}
		if l < len(layers)-1 {
			m.Hidden = append(m.Hidden, dense)
		} else {
			m.Output = dense
		}
	}
	return m, nil
}

// forwardFlat computes out = in·W + B for layer s of params.
func forwardFlat(params []float64, s layerShape, in, out []float64) {
	copy(out, params[s.bOff:s.bOff+s.out])
	for i, x := range in {
		if x == 0 {
			continue
		}
		w := params[s.wOff+i*s.out : s.wOff+(i+1)*s.out]
		for j := range out {
			out[j] += x * w[j]
		}
	}
}

// backwardFlat adds layer s's weight and bias gradients for one row to
// grad, given its input in and the gradient delta at its output. When
// propagate is set it also writes the gradient at the previous layer's
// pre-activation into prev: W·delta masked by ReLU (in[i] > 0).
func backwardFlat(params, grad []float64, s layerShape, in, delta, prev []float64, propagate bool) {
	gb := grad[s.bOff : s.bOff+s.out]
	for j, dj := range delta {
		gb[j] += dj
	}
	for i, x := range in {
		w := params[s.wOff+i*s.out : s.wOff+(i+1)*s.out]
		if propagate {
			if x > 0 {
				var sum float64
				for j, dj := range delta {
					sum += w[j] * dj
				}
				prev[i] = sum
			} else {
				prev[i] = 0
			}
		}
		if x == 0 {
			continue
		}
		gw := grad[s.wOff+i*s.out : s.wOff+(i+1)*s.out]
		for j, dj := range delta {
			gw[j] += x * dj
		}
	}
}
