package oip

import (
	"encoding/binary"
	"testing"

	"github.com/modelgate/modelgate/runtime"
)

// TestAppendHalf: every finite half is written so that it reads back to
// itself, in at most 5 significant digits.
func TestAppendHalf(t *testing.T) {
	d := new(Decoder)
	tt := &runtime.Tensor{DataType: runtime.FP16}
	for h := range 1 << 16 {
		if h&0x7c00 == 0x7c00 {
			if got := string(appendHalf(nil, uint16(h))); got != "null" {
				t.Fatalf("%#04x: %s", h, got)
			}
			continue
		}
		s := appendHalf(nil, uint16(h))
		d.buf, d.i = s, 0
		num, err := d.scanNumber()
		if err != nil || d.i != len(s) {
			t.Fatalf("%#04x: %s is not a JSON number", h, s)
		}
		tt.Data = tt.Data[:0]
		if err := appendNumber(tt, &num); err != nil || binary.LittleEndian.Uint16(tt.Data) != uint16(h) {
			t.Fatalf("%#04x: %s reads back as % x (%v)", h, s, tt.Data, err)
		}
		if n := sigDigits(num.text); n > 5 {
			t.Errorf("%#04x: %s has %d significant digits", h, s, n)
		}
	}
}

// sigDigits counts the significant digits of a JSON number.
func sigDigits(num []byte) int {
	var ds []byte
	for _, c := range num {
		if c == 'e' || c == 'E' {
			break
		}
		if c >= '0' && c <= '9' && (len(ds) > 0 || c != '0') {
			ds = append(ds, c)
		}
	}
	for len(ds) > 0 && ds[len(ds)-1] == '0' {
		ds = ds[:len(ds)-1]
	}
	return len(ds)
}
