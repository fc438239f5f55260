package oip

import (
	"encoding/binary"
	"testing"
)

// TestDecodeFP16RoundsOnce: an FP16 number is the JSON decimal correctly
// rounded to half, not the decimal rounded to float64 and then to half.
// The "hair" cases are decimals within half a float64 ulp of a tie
// between two halves: their nearest float64 is the tie itself, which
// alone would go to the even half (the decoder did that).
func TestDecodeFP16RoundsOnce(t *testing.T) {
	f := func(data string, want uint16) {
		t.Helper()
		in, msg := decodeOne(t, "FP16", "[1]", "["+data+"]")
		if msg != "" {
			t.Fatalf("FP16 %s: %s", data, msg)
		}
		if got := binary.LittleEndian.Uint16(in.Data); got != want {
			t.Errorf("FP16 %s = %#04x, want %#04x", data, got, want)
		}
	}
	f("1.00048828125", 0x3c00)           // 1 + 2^-11: the tie itself, to even
	f("1.0004882812500001", 0x3c01)      // a hair above it: up
	f("1.0004882812499999", 0x3c00)      // a hair below: down
	f("1.00146484375", 0x3c02)           // 1 + 3·2^-11: tie, to even
	f("1.0014648437499999", 0x3c01)      // below it
	f("2.9802322387695312e-08", 0x0000)  // 2^-25, half the smallest subnormal: to even (zero)
	f("2.9802322387695313e-08", 0x0001)  // a hair above
	f("-2.9802322387695313e-08", 0x8001) // and negative
	f("65519.99999999999", 0x7bff)       // below the midpoint to infinity
	f("65519.999999999999999", 0x7bff)   // nearest float64 is the midpoint, 65520
}

// TestDecodeBF16RoundsOnce: likewise for BF16, whose ties sit at 2^-8
// spacing around 1.
func TestDecodeBF16RoundsOnce(t *testing.T) {
	f := func(data string, want uint16) {
		t.Helper()
		in, msg := decodeOne(t, "BF16", "[1]", "["+data+"]")
		if msg != "" {
			t.Fatalf("BF16 %s: %s", data, msg)
		}
		if got := binary.LittleEndian.Uint16(in.Data); got != want {
			t.Errorf("BF16 %s = %#04x, want %#04x", data, got, want)
		}
	}
	f("1.00390625", 0x3f80)            // 1 + 2^-8: tie, to even
	f("1.0039062500000000001", 0x3f81) // a hair above
	f("1.0039062499999999999", 0x3f80) // a hair below
	f("-1.0039062500000000001", 0xbf81)
}
