package registry

import (
	"errors"
	"math"
	"strconv"
)

// A canary weight is a percentage of a model's traffic, 0 to 100, in steps
// of one basis point (0.01%): fine enough to start a canary on 0.1% of a
// busy model's traffic. On the wire it is a JSON number, so commands and
// snapshots written when weights were whole percentages read unchanged.

// BasisPoints is 100%, in basis points.
const BasisPoints = 10000

// CheckWeight returns an error saying what is wrong with w as a canary
// weight, or nil.
func CheckWeight(w float64) error {
	if math.IsNaN(w) || w < 0 || w > 100 {
		return errors.New("must be a percentage between 0 and 100")
	}
	if bp := w * 100; math.Abs(bp-math.Round(bp)) > 1e-6 {
		return errors.New("must be a percentage in steps of 0.01 (one basis point)")
	}
	return nil
}

// WeightBasisPoints converts a checked weight to basis points (0–10000).
func WeightBasisPoints(w float64) uint32 {
	return uint32(math.Round(w * 100))
}

// FormatWeight writes a weight as its shortest decimal ("10", "0.1").
func FormatWeight(w float64) string {
	return strconv.FormatFloat(w, 'f', -1, 64)
}
