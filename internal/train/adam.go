package train

import "math"

// adam is the Adam optimiser over one flat parameter vector.
type adam struct {
	lr, beta1, beta2, eps float64
	m, v                  []float64
	t                     int
}

func newAdam(n int, lr float64) *adam {
	return &adam{lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, m: make([]float64, n), v: make([]float64, n)}
}

// step moves params against grad with learning rate a.lr*scale.
func (a *adam) step(params, grad []float64, scale float64) {
	a.t++
	c1 := 1 - math.Pow(a.beta1, float64(a.t))
	c2 := 1 - math.Pow(a.beta2, float64(a.t))
	lr := a.lr * scale * math.Sqrt(c2) / c1
	for i, g := range grad {
		a.m[i] = a.beta1*a.m[i] + (1-a.beta1)*g
		a.v[i] = a.beta2*a.v[i] + (1-a.beta2)*g*g
		params[i] -= lr * a.m[i] / (math.Sqrt(a.v[i]) + a.eps)
	}
}

// lrSchedule scales the learning rate down linearly from 1 to 0.1 over the
// run, so the last epochs settle instead of bouncing around the optimum.
func lrSchedule(step, total int) float64 {
	if total <= 1 {
		return 1
	}
	return 1 - 0.9*float64(step)/float64(total-1)
}
