// Package float16 converts between float32/float64 and the two 16-bit
// floating-point formats tensors carry: IEEE 754 binary16 ("half", OIP's
// FP16: 1 sign bit, 5 exponent bits, 10 mantissa bits) and bfloat16 (BF16:
// the top half of a float32). JSON carries both as ordinary numbers, so the
// OIP codec and the prediction log convert both ways; rounding is to
// nearest, ties to even, done once.
package float16

import "math"

// FromFloat32 returns the binary16 bits nearest to f, ties to even.
// Values beyond the largest half (65504) round to infinity when they are at
// least 65520, NaN stays NaN (quiet, keeping the top payload bits).
func FromFloat32(f float32) uint16 {
	// float32 → float64 is exact, so one rounding happens, here.
	return FromFloat64(float64(f))
}

// FromFloat64 rounds f to binary16, to nearest, ties to even. The
// decoder parses FP16 numbers to float64 and rounds once, with no double
// rounding through float32.
func FromFloat64(f float64) uint16 {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0x7ff {
		if mant == 0 {
			return sign | 0x7c00 // ±Inf
		}
		return sign | 0x7e00 | uint16(mant>>42) // NaN, quiet
	}
	e := exp - 1023 // f = 1.mant × 2^e
	switch {
	case e > 15:
		return sign | 0x7c00
	case e >= -14:
		// A normal half: keep the top 10 of the 52 mantissa bits and round
		// on the other 42. A carry out of the mantissa bumps the exponent,
		// which is right, up to infinity (0x7c00) above 65504.
		h := uint16(e+15)<<10 | uint16(mant>>42)
		rest, halfway := mant&(1<<42-1), uint64(1)<<41
		if rest > halfway || rest == halfway && h&1 == 1 {
			h++
		}
		return sign | h
	case e < -25:
		// Below half the smallest subnormal (2^-24): zero. This includes
		// float64 subnormals.
		return sign
	}
	// A subnormal half, counted in units of 2^-24: f / 2^-24 =
	// (1.mant × 2^52) × 2^(e-28), a right shift by 28-e (43…53 bits).
	full := mant | 1<<52
	shift := uint(28 - e)
	h := uint16(full >> shift)
	rest, halfway := full&(1<<shift-1), uint64(1)<<(shift-1)
	if rest > halfway || rest == halfway && h&1 == 1 {
		h++ // may carry into the smallest normal, 0x0400: right too
	}
	return sign | h
}

// ToFloat32 returns the value of the binary16 bits h (exactly: every
// half is a float32).
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: mant × 2^-24. Normalise so the leading one is bit 10.
		e := int32(-14)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | uint32(e+127)<<23 | (mant&0x3ff)<<13)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BFloat16FromFloat64 returns the bfloat16 bits (the top half of a float32:
// 8 exponent bits, 7 mantissa bits) nearest to f, ties to even. It rounds
// f to float32 by round-to-odd first: with 24 bits against bfloat16's 8,
// that intermediate step cannot create a false tie, so the result is the
// correctly rounded one.
func BFloat16FromFloat64(f float64) uint16 {
	f32 := float32(f)
	if float64(f32) != f && !math.IsInf(float64(f32), 0) {
		b := math.Float32bits(f32)
		if math.Abs(float64(f32)) > math.Abs(f) {
			b-- // truncate toward zero: the magnitude is in the low 31 bits
		}
		f32 = math.Float32frombits(b | 1) // odd: remembers the inexactness
	}
	b := math.Float32bits(f32)
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BFloat16ToFloat32 returns the value of the bfloat16 bits h (exactly).
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
