package float16

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The OIP decoder parses FP16 numbers to float64 and rounds once with
// FromFloat64, so the bits of a float64 below float32's precision (the low
// 29 of its mantissa) decide a rounding just as much as the others. The
// float32 tests cannot see them: every float32 has those bits at zero.

// nearestHalf64 is the reference for FromFloat64: x rounded to the binary16
// grid by scaling with the grid spacing (a power of two, so exact) and
// math.RoundToEven. Beyond the half range it returns ±Inf.
func nearestHalf64(x float64) float64 {
	a := math.Abs(x)
	var ulp float64
	if a < 0x1p-14 {
		ulp = 0x1p-24
	} else {
		_, e := math.Frexp(a)
		ulp = math.Ldexp(1, e-1-10)
	}
	r := math.RoundToEven(a/ulp) * ulp
	if r > 65504 {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

func TestFromFloat64Known(t *testing.T) {
	f := func(in float64, want uint16) {
		t.Helper()
		if got := FromFloat64(in); got != want {
			t.Errorf("FromFloat64(%v = %#016x) = %#04x, want %#04x", in, math.Float64bits(in), got, want)
		}
	}
	// Ties and their neighbours, decided only by float64's low bits.
	f(1+0x1p-11, 0x3c00)         // tie between 1 and 1+2^-10: even
	f(1+0x1p-11+0x1p-52, 0x3c01) // one float64 ulp above the tie
	f(1+0x1p-11+0x1p-40, 0x3c01) // above the tie by a bit float32 cannot hold
	f(1+0x1p-11-0x1p-52, 0x3c00) // one ulp below
	f(1+0x3p-11, 0x3c02)         // tie between 0x3c01 and 0x3c02: even
	f(1+0x3p-11-0x1p-52, 0x3c01) // just below it
	f(-(1 + 0x1p-11 + 0x1p-45), 0xbc01)
	f(65504+16-0x1p-30, 0x7bff) // a hair below the midpoint to infinity
	f(65520, 0x7c00)            // the midpoint: even, which is infinity
	f(2049+0x1p-40, 0x6801)     // above a tie at spacing 2
	// Subnormal halves, counted in units of 2^-24.
	f(0x1p-25, 0x0000)             // half a unit: tie, to even (zero)
	f(0x1p-25+0x1p-70, 0x0001)     // above it by a bit far below float32
	f(0x1p-25-0x1p-78, 0x0000)     // below it
	f(0x3p-25, 0x0002)             // 1.5 units: tie, to even
	f(0x3p-25-0x1p-75, 0x0001)     // just below it
	f(0x5p-25+0x1p-70, 0x0003)     // just above 2.5 units
	f(0x1.ffcp-15, 0x0400)         // tie between the largest subnormal and the smallest normal
	f(0x1.ffcp-15-0x1p-60, 0x03ff) // just below it
	f(-(0x1p-25 + 0x1p-70), 0x8001)
	f(0x1p-26, 0x0000)                  // a quarter unit
	f(math.SmallestNonzeroFloat64, 0x0) // a float64 subnormal
	f(-math.SmallestNonzeroFloat64, 0x8000)
}

// TestFromFloat64EveryTie walks every finite half h and the midpoint to the
// next half up in magnitude: the midpoint goes to the even one, and one
// float64 ulp either side (bits float32 would lose) goes to the nearer one.
func TestFromFloat64EveryTie(t *testing.T) {
	for h := uint16(0); h < 0x7bff; h++ {
		for _, sign := range []uint16{0, 0x8000} {
			lo, hi := float64(ToFloat32(h)), float64(ToFloat32(h+1))
			mid := (lo + hi) / 2 // exact: both have 11 significant bits
			even := h
			if h&1 == 1 {
				even = h + 1
			}
			below, above := math.Nextafter(mid, 0), math.Nextafter(mid, math.Inf(1))
			if sign != 0 {
				mid, below, above = -mid, -below, -above
			}
			if got := FromFloat64(mid); got != sign|even {
				t.Fatalf("tie %v between %#04x and %#04x: got %#04x, want %#04x", mid, sign|h, sign|(h+1), got, sign|even)
			}
			if got := FromFloat64(below); got != sign|h {
				t.Fatalf("%v, one ulp toward %#04x from the tie with %#04x: got %#04x", below, sign|h, sign|(h+1), got)
			}
			if got := FromFloat64(above); got != sign|(h+1) {
				t.Fatalf("%v, one ulp toward %#04x from the tie with %#04x: got %#04x", above, sign|(h+1), sign|h, got)
			}
		}
	}
}

// TestFromFloat64Reference compares FromFloat64 with the reference on random
// float64s across and around the half range, every bit of the mantissa
// random.
func TestFromFloat64Reference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		// Exponents 2^-30 … 2^17: below the subnormals to past infinity.
		e := uint64(1023-30) + r.Uint64N(48)
		bits := r.Uint64()&(1<<63|(1<<52-1)) | e<<52
		x := math.Float64frombits(bits)
		got := ToFloat32(FromFloat64(x))
		want := nearestHalf64(x)
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("FromFloat64(%v = %#016x) = %v, want %v", x, bits, got, want)
		}
	}
}
