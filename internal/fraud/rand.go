package fraud

import (
	"math"
	"math/rand/v2"
)

// source turns a PCG stream into the few distributions the generator needs.
// It derives them itself rather than through rand.Rand's NormFloat64 and
// ExpFloat64, whose algorithms Go does not promise to keep: PCG's output is
// fixed by its definition, so a seed means the same transactions (and the
// demo model the same bytes) whatever Go release builds it. Every method
// consumes a fixed number of PCG outputs.
type source struct {
	pcg rand.PCG
}

// uniform returns a float64 in [0, 1) from one PCG output.
func (s *source) uniform() float64 {
	return float64(s.pcg.Uint64()>>11) / (1 << 53)
}

// normal returns a standard normal draw (Box–Muller, two PCG outputs).
func (s *source) normal() float64 {
	u1 := 1 - s.uniform() // (0, 1], so the log is finite
	u2 := s.uniform()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// exponential returns an Exp(1) draw (one PCG output).
func (s *source) exponential() float64 {
	return -math.Log(1 - s.uniform())
}
