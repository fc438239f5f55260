package train

import (
	"math"
	"math/rand/v2"
)

// pcgStream is the second PCG word; Config.Seed is the first.
const pcgStream = 0x747261696e696e67 // "training"

// source draws the trainers' randomness from PCG directly rather than through
// rand.Rand's Shuffle and NormFloat64, whose algorithms Go does not promise
// to keep, so a seed gives the same model whatever Go release builds it.
type source struct {
	pcg rand.PCG
}

func newSource(seed int64) *source {
	s := &source{}
	s.pcg.Seed(uint64(seed), pcgStream)
	return s
}

// uniform returns a float64 in [0, 1).
func (s *source) uniform() float64 {
	return float64(s.pcg.Uint64()>>11) / (1 << 53)
}

// normal returns a standard normal draw (Box–Muller).
func (s *source) normal() float64 {
	u1 := 1 - s.uniform()
	u2 := s.uniform()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// shuffle permutes p (Fisher–Yates). The modulo's bias is below 2^-40 for
// any slice that fits in memory.
func (s *source) shuffle(p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := int(s.pcg.Uint64() % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
}

// identity returns [0, 1, ..., n-1].
func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}
