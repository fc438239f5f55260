package float16

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nearestHalf is the reference: f rounded to the binary16 grid, ties to
// even, by scaling to the grid spacing (exact, a power of two) and
// math.RoundToEven. It returns ±Inf beyond the half range.
func nearestHalf(f float32) float64 {
	x := float64(f)
	a := math.Abs(x)
	var ulp float64
	if a < 0x1p-14 {
		ulp = 0x1p-24
	} else {
		_, e := math.Frexp(a) // a = m × 2^e, m in [0.5, 1)
		ulp = math.Ldexp(1, e-1-10)
	}
	r := math.RoundToEven(a/ulp) * ulp
	if r > 65504 {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

func TestFloat16Known(t *testing.T) {
	f := func(in float32, want uint16) {
		t.Helper()
		if got := FromFloat32(in); got != want {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", in, got, want)
		}
	}
	f(0, 0x0000)
	f(float32(math.Copysign(0, -1)), 0x8000)
	f(1, 0x3c00)
	f(-2, 0xc000)
	f(0.1, 0x2e66)
	f(65504, 0x7bff)     // largest half
	f(65519.996, 0x7bff) // just below the midpoint to infinity
	f(65520, 0x7c00)     // the midpoint: ties to even, which is infinity
	f(1e6, 0x7c00)       // overflow
	f(float32(math.Inf(-1)), 0xfc00)
	f(0x1p-14, 0x0400)           // smallest normal
	f(0x1p-24, 0x0001)           // smallest subnormal
	f(0x1p-25, 0x0000)           // half of it: a tie, to even (zero)
	f(0x1.8p-25, 0x0001)         // above the tie
	f(0x3p-25, 0x0002)           // 1.5 × 2^-24: a tie, to even (2)
	f(0x1.ff8p-15, 0x03ff)       // largest subnormal
	f(0x1.ffcp-15, 0x0400)       // tie between it and the smallest normal: even
	f(1+0x1p-11, 0x3c00)         // a tie between 1 and 1+2^-10: even
	f(1+0x3p-11, 0x3c02)         // a tie between 1+2^-10 and 1+2^-9: even
	f(1+0x1p-11+0x1p-20, 0x3c01) // just above a tie
	f(2047, 0x67ff)
	f(2049, 0x6800) // a tie at 2^11 spacing 2: even (2048)
	if h := FromFloat32(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN became %#04x", h)
	}
}

// TestFloat16RoundTrip: every half converts to a float32 and back to itself.
func TestFloat16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := ToFloat32(uint16(h))
		back := FromFloat32(f)
		if f != f { // NaN: stays NaN with the same sign
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != uint16(h)&0x8000 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x → %g → %#04x", h, f, back)
		}
	}
	// Spot values of the float32 side.
	for _, c := range []struct {
		h uint16
		f float32
	}{{0x3c00, 1}, {0x0001, 0x1p-24}, {0x03ff, 0x1.ff8p-15}, {0x7bff, 65504}, {0xfc00, float32(math.Inf(-1))}, {0x3555, 0x1.554p-2}} {
		if got := ToFloat32(c.h); got != c.f {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", c.h, got, c.f)
		}
	}
}

// TestFloat16Rounding compares FromFloat32 with the reference on random
// float32s and on every tie and near-tie of the half grid.
func TestFloat16Rounding(t *testing.T) {
	check := func(f float32) {
		if f != f {
			return
		}
		got := float64(ToFloat32(FromFloat32(f)))
		want := nearestHalf(f)
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("%g (%#08x): got %g, want %g", f, math.Float32bits(f), got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		check(math.Float32frombits(r.Uint32()))
	}
	// Float32s in and around the half range whose low 13 bits (the ones a
	// normal half drops) sit at or next to the midpoint, plus subnormal ties.
	for exp := uint32(100); exp <= 143; exp++ {
		for m := uint32(0); m < 1<<10; m += 7 {
			for _, low := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff} {
				bits := exp<<23 | m<<13 | low
				check(math.Float32frombits(bits))
				check(math.Float32frombits(bits | 1<<31))
			}
		}
	}
	for k := range 1 << 11 {
		check(float32(k) * 0x1p-25) // every multiple of half the subnormal spacing
	}
}

func TestBFloat16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := BFloat16ToFloat32(uint16(h))
		if f != f { // NaN
			continue
		}
		if got := BFloat16FromFloat64(float64(f)); got != uint16(h) {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, f, got)
		}
		if h&0x7f80 == 0x7f80 { // infinities: no next value to tie with
			continue
		}
		// Halfway to the next bfloat16 (same sign, larger magnitude): ties
		// go to the even one; a hair above goes up.
		lo, hi := float64(f), float64(BFloat16ToFloat32(uint16(h+1)))
		if math.IsInf(hi, 0) || uint16(h+1)&0x7fff == 0 {
			continue
		}
		mid := (lo + hi) / 2
		want := uint16(h)
		if h&1 == 1 {
			want = uint16(h + 1)
		}
		if got := BFloat16FromFloat64(mid); got != want {
			t.Fatalf("tie between %#04x and %#04x rounds to %#04x", h, h+1, got)
		}
		above := mid + (hi-lo)/1024 // toward hi, whatever the sign
		if got := BFloat16FromFloat64(above); got != uint16(h+1) {
			t.Fatalf("just above the tie between %#04x and %#04x rounds to %#04x", h, h+1, got)
		}
	}
}
