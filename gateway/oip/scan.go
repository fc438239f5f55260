package oip

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The JSON primitives of the Decoder: whitespace, strings, numbers and a
// validating skip of values the request schema does not use. They read
// d.buf from d.i and leave d.i after what they consumed.

// maxSkipDepth bounds the nesting of values the decoder skips (unknown
// fields, parameters), so hostile input cannot recurse deeply.
const maxSkipDepth = 64

// skipWS advances past JSON whitespace and returns the next byte, or 0 at
// the end of the input. A NUL byte in the input also reads as 0: callers
// that need to tell the end apart compare d.i with len(d.buf).
func (d *Decoder) skipWS() byte {
	for d.i < len(d.buf) {
		c := d.buf[d.i]
		if c > ' ' || (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
			return c
		}
		d.i++
	}
	return 0
}

// syntaxErr reports malformed JSON at the current position.
func (d *Decoder) syntaxErr(what string) *Error {
	return badRequest("malformed JSON at byte " + strconv.Itoa(d.i) + ": " + what)
}

// unexpected reports malformed JSON: want was expected where something else is.
func (d *Decoder) unexpected(want string) *Error {
	if d.i >= len(d.buf) {
		return d.syntaxErr("unexpected end of JSON, expected " + want)
	}
	return d.syntaxErr("expected " + want + ", found " + quoteByte(d.buf[d.i]))
}

func quoteByte(c byte) string {
	if c >= ' ' && c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// describe names the kind of JSON value that starts at d.i, for messages like
// "expected a number, got a string".
func (d *Decoder) describe() string {
	if d.i >= len(d.buf) {
		return "the end of the JSON"
	}
	switch c := d.buf[d.i]; c {
	case '"':
		return "a string"
	case '[':
		return "an array"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		if d.nonFinite() {
			return "NaN"
		}
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if d.nonFinite() {
			return "an infinity"
		}
		return "a number"
	default:
		if d.nonFinite() {
			return "NaN or Infinity, which JSON does not allow"
		}
		return quoteByte(c)
	}
}

// nonFinite reports whether a NaN or Infinity literal (which JSON lacks but
// some encoders write) starts at d.i.
func (d *Decoder) nonFinite() bool {
	s := d.buf[d.i:]
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return len(s) >= 3 && (lowerEq(s[:3], "nan") || lowerEq(s[:3], "inf"))
}

func lowerEq(b []byte, lower string) bool {
	for i := range len(b) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// literal consumes the literal word (true, false, null) at d.i.
func (d *Decoder) literal(word string) error {
	if len(d.buf)-d.i < len(word) || string(d.buf[d.i:d.i+len(word)]) != word {
		return d.unexpected("a JSON value")
	}
	d.i += len(word)
	return nil
}

// parseString consumes the string at d.i (which is '"') and returns its
// unescaped bytes. The result aliases d.buf or d.scratch: it is valid until
// the next parseString.
func (d *Decoder) parseString() ([]byte, error) {
	buf := d.buf
	start := d.i + 1
	for i := start; i < len(buf); i++ {
		switch c := buf[i]; {
		case c == '"':
			d.i = i + 1
			return buf[start:i], nil
		case c == '\\':
			return d.parseStringSlow(start, i)
		case c < ' ':
			d.i = i
			return nil, d.syntaxErr("control character " + quoteByte(c) + " in a string (escape it)")
		}
	}
	d.i = len(buf)
	return nil, d.syntaxErr("unterminated string")
}

// parseStringSlow unescapes a string whose first backslash is at i into
// d.scratch.
func (d *Decoder) parseStringSlow(start, i int) ([]byte, error) {
	buf := d.buf
	out := append(d.scratch[:0], buf[start:i]...)
	for i < len(buf) {
		c := buf[i]
		switch {
		case c == '"':
			d.i = i + 1
			d.scratch = out
			return out, nil
		case c < ' ':
			d.i = i
			return nil, d.syntaxErr("control character " + quoteByte(c) + " in a string (escape it)")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		// An escape.
		if i+1 >= len(buf) {
			break
		}
		e := buf[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(buf, i)
			if !ok {
				d.i = i - 2
				return nil, d.syntaxErr(`invalid \u escape in a string`)
			}
			i += 4
			if utf16High(r) {
				// A surrogate pair is two escapes; a lone half becomes U+FFFD,
				// as encoding/json does.
				if i+6 <= len(buf) && buf[i] == '\\' && buf[i+1] == 'u' {
					if r2, ok := hex4(buf, i+2); ok && utf16Low(r2) {
						r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if utf16Low(r) {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			d.i = i - 2
			return nil, d.syntaxErr("invalid escape " + strconv.Quote(string(buf[i-2:i])) + " in a string")
		}
	}
	d.scratch = out
	d.i = len(buf)
	return nil, d.syntaxErr("unterminated string")
}

func utf16High(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16Low(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }

// hex4 decodes the four hex digits at buf[i:].
func hex4(buf []byte, i int) (rune, bool) {
	if i+4 > len(buf) {
		return 0, false
	}
	var r rune
	for _, c := range buf[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number is a JSON number as scanNumber read it: text is
// [-]int[.frac][(e|E)[±]x], and the magnitude is the digits of int and
// frac read as one integer, times 10^exp.
type number struct {
	text    []byte
	neg     bool
	isInt   bool // no fraction, no exponent
	intLen  int  // digits before the point
	fracLen int  // digits after it
	digits  int  // intLen + fracLen, leading zeros included
	exp     int  // the exponent, minus fracLen; clamped to ±100000
}

// mantissa is the digits of n read as one integer. The caller has checked
// n.digits ≤ 19, so it cannot overflow.
func (n *number) mantissa() uint64 {
	i := 0
	if n.neg {
		i = 1
	}
	var m uint64
	for _, c := range n.text[i : i+n.intLen] {
		m = m*10 + uint64(c-'0')
	}
	if n.fracLen > 0 {
		i += n.intLen + 1
		for _, c := range n.text[i : i+n.fracLen] {
			m = m*10 + uint64(c-'0')
		}
	}
	return m
}

// scanNumber consumes the JSON number at d.i, checking its syntax and
// noting where its parts are, so conversions can tell short numbers at a
// glance. The caller has checked that d.buf[d.i] is '-' or a digit.
func (d *Decoder) scanNumber() (n number, err error) {
	buf := d.buf
	i := d.i
	if buf[i] == '-' {
		n.neg = true
		i++
	}
	j := i
	switch {
	case i < len(buf) && buf[i] == '0':
		i++
		if i < len(buf) && buf[i] >= '0' && buf[i] <= '9' {
			d.i = i
			return n, d.syntaxErr("a number with a leading zero, which JSON does not allow")
		}
	case i < len(buf) && buf[i] >= '1' && buf[i] <= '9':
		for i < len(buf) && buf[i] >= '0' && buf[i] <= '9' {
			i++
		}
	default:
		d.i = i
		if d.nonFinite() {
			return n, d.syntaxErr("-Infinity is not a JSON number")
		}
		return n, d.unexpected("a digit")
	}
	n.intLen = i - j
	n.isInt = true
	if i < len(buf) && buf[i] == '.' {
		i++
		j = i
		for i < len(buf) && buf[i] >= '0' && buf[i] <= '9' {
			i++
		}
		if i == j {
			d.i = i
			return n, d.unexpected("a digit after the decimal point")
		}
		n.fracLen = i - j
		n.isInt = false
	}
	if i < len(buf) && (buf[i] == 'e' || buf[i] == 'E') {
		i++
		eneg := false
		if i < len(buf) && (buf[i] == '+' || buf[i] == '-') {
			eneg = buf[i] == '-'
			i++
		}
		j = i
		for ; i < len(buf) && buf[i] >= '0' && buf[i] <= '9'; i++ {
			if n.exp < 100000 {
				n.exp = n.exp*10 + int(buf[i]-'0')
			}
		}
		if i == j {
			d.i = i
			return n, d.unexpected("a digit in the exponent")
		}
		if eneg {
			n.exp = -n.exp
		}
		n.isInt = false
	}
	n.exp -= n.fracLen
	n.digits = n.intLen + n.fracLen
	n.text = buf[d.i:i]
	d.i = i
	return n, nil
}

// parseUint parses the digits of an integer literal (no sign); ok is false on
// overflow of uint64.
func parseUint(digits []byte) (v uint64, ok bool) {
	for _, c := range digits {
		if v > (1<<64-1)/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v < uint64(c-'0') {
			return 0, false
		}
	}
	return v, true
}

// b2s views b as a string for the duration of a call that does not keep it
// (strconv.ParseFloat clones its input into any error it returns).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// skipValue consumes one JSON value of any kind, checking that it is well
// formed and nested at most maxSkipDepth deep.
func (d *Decoder) skipValue(depth int) error {
	if depth > maxSkipDepth {
		return d.syntaxErr("JSON nested deeper than " + strconv.Itoa(maxSkipDepth) + " levels")
	}
	switch d.skipWS() {
	case '{':
		d.i++
		if d.skipWS() == '}' {
			d.i++
			return nil
		}
		for {
			if d.skipWS() != '"' {
				return d.unexpected("a string key")
			}
			if _, err := d.parseString(); err != nil {
				return err
			}
			if d.skipWS() != ':' {
				return d.unexpected("':' after an object key")
			}
			d.i++
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			switch d.skipWS() {
			case ',':
				d.i++
			case '}':
				d.i++
				return nil
			default:
				return d.unexpected("',' or '}' after an object value")
			}
		}
	case '[':
		d.i++
		if d.skipWS() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			switch d.skipWS() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return d.unexpected("',' or ']' after an array element")
			}
		}
	case '"':
		_, err := d.parseString()
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		if d.nonFinite() {
			return d.syntaxErr("NaN is not a JSON value")
		}
		return d.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, err := d.scanNumber()
		return err
	default:
		if d.i < len(d.buf) && d.nonFinite() {
			return d.syntaxErr("NaN and Infinity are not JSON values")
		}
		return d.unexpected("a JSON value")
	}
}

// objectNext is called after an object member: it consumes ',' (more
// members follow, true) or '}' (the object ends, false).
func (d *Decoder) objectNext() (more bool, err error) {
	switch d.skipWS() {
	case ',':
		d.i++
		return true, nil
	case '}':
		d.i++
		return false, nil
	}
	return false, d.unexpected("',' or '}' after an object value")
}

// arrayNext is objectNext for arrays.
func (d *Decoder) arrayNext() (more bool, err error) {
	switch d.skipWS() {
	case ',':
		d.i++
		return true, nil
	case ']':
		d.i++
		return false, nil
	}
	return false, d.unexpected("',' or ']' after an array element")
}

// objectKey consumes `"key":` at d.i (after '{' or ',') and returns the
// unescaped key, valid until the next parseString. On success d.i is at the
// first byte of the value, so callers may read d.buf[d.i].
func (d *Decoder) objectKey() ([]byte, error) {
	if d.skipWS() != '"' {
		return nil, d.unexpected("a string key")
	}
	k, err := d.parseString()
	if err != nil {
		return nil, err
	}
	if d.skipWS() != ':' {
		return nil, d.unexpected("':' after an object key")
	}
	d.i++
	if d.skipWS(); d.i >= len(d.buf) {
		return nil, d.unexpected("a value after " + strconv.Quote(string(k)))
	}
	return k, nil
}

// openObject consumes '{' and reports whether '}' follows at once.
func (d *Decoder) openObject() (empty bool) {
	d.i++
	if d.skipWS() == '}' {
		d.i++
		return true
	}
	return false
}

// openArray consumes '[' and reports whether ']' follows at once.
func (d *Decoder) openArray() (empty bool) {
	d.i++
	if d.skipWS() == ']' {
		d.i++
		return true
	}
	return false
}
