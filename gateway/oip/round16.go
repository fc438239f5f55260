package oip

import (
	"math"
	"math/big"
)

// round16 converts the JSON number num, already correctly rounded to the
// float64 f, to a 16-bit float with conv (FP16 or BF16), so that the
// result is num correctly rounded, not f. Rounding twice goes wrong only
// when f lands exactly on a tie between two 16-bit values while num itself
// was on one side of it ("1.0004882812500001" is above the FP16 tie
// 1+2^-11, but its nearest float64 is the tie, which goes to the even
// half). A tie shows as f's two float64 neighbours converting differently;
// then num is compared with f exactly. Ties are rare, so that comparison
// and its allocations are too.
func round16(num *number, f float64, conv func(float64) uint16) uint16 {
	h := conv(f)
	down, up := conv(math.Nextafter(f, math.Inf(-1))), conv(math.Nextafter(f, math.Inf(1)))
	if down == up {
		return h
	}
	exact, ok := new(big.Rat).SetString(string(num.text))
	if !ok {
		return h
	}
	switch exact.Cmp(new(big.Rat).SetFloat64(f)) {
	case -1:
		return down
	case 1:
		return up
	}
	return h
}
