package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/modelgate/modelgate/internal/fraud"
)

// idDigits is the width of the per-request part of a request id: the
// sequence number in hex, patched in place into each body.
const idDigits = 16

// body is one prepared request body. idAt is the offset of the idDigits
// hex digits to patch with the request's sequence number, or -1 when the
// body keeps its own id.
type body struct {
	b     []byte
	idAt  int
	label bool // the generator's ground truth, for delayed labels
}

// noDrift is the training population.
var noDrift fraud.Drift

// ring is a fixed set of bodies sent round-robin.
type ring struct {
	bodies []body
	drift  bool
}

// idPrefix is the run's request-id prefix ("mgb<8 hex>-"): unique per run,
// so labels never land on another run's predictions.
func idPrefix(nonce uint32) []byte {
	b := append([]byte("mgb"), fmt.Sprintf("%08x", nonce)...)
	return append(b, '-')
}

// appendID appends `"id":"<prefix><digits>"` and returns the offset of the
// digits.
func appendID(dst, prefix []byte) ([]byte, int) {
	dst = append(dst, `"id":"`...)
	dst = append(dst, prefix...)
	at := len(dst)
	for range idDigits {
		dst = append(dst, '0')
	}
	return append(dst, '"'), at
}

// putID writes seq as idDigits hex digits into b at offset at.
func putID(b []byte, at int, seq uint64) {
	const hex = "0123456789abcdef"
	for i := idDigits - 1; i >= 0; i-- {
		b[at+i] = hex[seq&0xf]
		seq >>= 4
	}
}

// generateRing draws n bodies of rows transactions each from a generator
// seeded with seed (drifted when d is not NoDrift). Each body has a unique
// id slot and a routing key drawn from accounts account ids; a body's label
// is true when any of its rows is fraud.
func generateRing(n, rows, accounts int, seed int64, d fraud.Drift, prefix []byte) ring {
	var opts []fraud.Option
	if d.Kind != fraud.NoDrift {
		opts = append(opts, fraud.WithDrift(d))
	}
	g := fraud.NewGenerator(seed, opts...)
	row := make([]float32, fraud.NumFeatures)
	r := ring{bodies: make([]body, n), drift: d.Kind != fraud.NoDrift}
	// The account pool is drawn with a simple LCG so routing keys do not
	// consume generator draws (keeping drifted and clean rings aligned).
	acct := uint64(seed)*6364136223846793005 + 1442695040888963407
	for i := range n {
		b := make([]byte, 0, 64+rows*fraud.NumFeatures*11)
		b = append(b, '{')
		b, at := appendID(b, prefix)
		acct = acct*6364136223846793005 + 1442695040888963407
		b = append(b, `,"parameters":{"routing_key":"acct-`...)
		b = strconv.AppendUint(b, (acct>>33)%uint64(accounts), 10)
		b = append(b, `"},"inputs":[{"name":"features","shape":[`...)
		b = strconv.AppendInt(b, int64(rows), 10)
		b = append(b, `,`...)
		b = strconv.AppendInt(b, fraud.NumFeatures, 10)
		b = append(b, `],"datatype":"FP32","data":[`...)
		label := false
		for j := range rows {
			label = g.Next(row) || label
			for k, v := range row {
				if j > 0 || k > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', 6, 32)
			}
		}
		b = append(b, "]}]}"...)
		r.bodies[i] = body{b: b, idAt: at, label: label}
	}
	return r
}

// readBodyFile reads one OIP JSON body per line (blank lines skipped). A
// body with no "id" gets an id slot inserted after its opening brace, so
// every request is told apart; labels are unknown (false).
func readBodyFile(path string, prefix []byte) (ring, error) {
	f, err := os.Open(path)
	if err != nil {
		return ring{}, fmt.Errorf("bench: cannot read bodies: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var r ring
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' {
			return ring{}, fmt.Errorf("%w: %s line %d is not a JSON object", ErrInvalidConfig, path, len(r.bodies)+1)
		}
		bd := body{idAt: -1}
		if bytes.Contains(line, []byte(`"id"`)) {
			bd.b = append([]byte(nil), line...)
		} else {
			b := []byte{'{'}
			b, bd.idAt = appendID(b, prefix)
			rest := bytes.TrimSpace(line[1:])
			if len(rest) > 0 && rest[0] != '}' {
				b = append(b, ',')
			}
			bd.b = append(b, rest...)
		}
		r.bodies = append(r.bodies, bd)
	}
	if err := sc.Err(); err != nil {
		return ring{}, fmt.Errorf("bench: cannot read bodies from %s: %w", path, err)
	}
	if len(r.bodies) == 0 {
		return ring{}, fmt.Errorf("%w: %s", ErrNoBodies, path)
	}
	return r, nil
}

// versionKey is what precedes the answering version in an OIP response.
var versionKey = []byte(`"model_version":`)

// parseVersion finds the model_version in an OIP response body without
// decoding it: the string (or number) after the key, or nil.
func parseVersion(resp []byte) []byte {
	i := bytes.Index(resp, versionKey)
	if i < 0 {
		return nil
	}
	v := resp[i+len(versionKey):]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	if len(v) == 0 {
		return nil
	}
	if v[0] == '"' {
		v = v[1:]
		if j := bytes.IndexByte(v, '"'); j >= 0 {
			return v[:j]
		}
		return nil
	}
	j := 0
	for j < len(v) && v[j] != ',' && v[j] != '}' && v[j] != ' ' {
		j++
	}
	return v[:j]
}
