package drift

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Formats ProfileFromReader reads.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// maxLine bounds one NDJSON line.
const maxLine = 16 << 20

// ReaderOptions are ProfileFromReader's options: the profile's options
// plus which column, if any, holds the model's score.
type ReaderOptions struct {
	ProfileOptions
	// ScoreColumn names the column holding the score; it becomes the
	// profile's output rather than a feature. Empty: no score.
	ScoreColumn string
}

// ProfileFromReader builds a profile from a file of reference rows:
//
//   - "csv": a header row of column names, then one row of numbers per line;
//     an empty cell, NaN, NA or null is a missing value.
//   - "ndjson": one JSON value per line, either an array of numbers (names
//     from opts.Names) or an object of name → number (the first object's
//     keys, in order, are the columns; later objects may omit keys, which
//     are missing, but not add any). null is missing.
//
// An empty format picks ndjson when the first byte is '[' or '{' and csv
// otherwise. Names from the file become the features' names.
func ProfileFromReader(r io.Reader, format string, opts ReaderOptions) (*Profile, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if format == "" {
		format = FormatCSV
		if b, err := peekNonSpace(br); err == nil && (b == '[' || b == '{') {
			format = FormatNDJSON
		}
	}
	var rows rowSource
	switch strings.ToLower(format) {
	case FormatCSV:
		rows = newCSVRows(br)
	case FormatNDJSON, "jsonl":
		rows = &ndjsonRows{sc: bufio.NewScanner(br)}
		rows.(*ndjsonRows).sc.Buffer(make([]byte, 64<<10), maxLine)
	default:
		return nil, fieldErr(ErrInvalidConfig, "format", format, `must be "csv" or "ndjson"`)
	}
	var b *ProfileBuilder
	scoreCol := -1
	var row []float32
	for {
		vals, err := rows.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if b == nil {
			o := opts.ProfileOptions
			names := rows.names()
			if names != nil {
				kept := make([]string, 0, len(names))
				for i, n := range names {
					if opts.ScoreColumn != "" && n == opts.ScoreColumn {
						scoreCol = i
						continue
					}
					kept = append(kept, n)
				}
				if o.Names == nil {
					o.Names = kept
				}
			}
			if opts.ScoreColumn != "" && scoreCol < 0 {
				return nil, fieldErr(ErrInvalidConfig, "score_column", opts.ScoreColumn, "names no column of the file")
			}
			b = NewProfileBuilder(o)
			row = make([]float32, 0, len(vals))
		}
		row = row[:0]
		for i, v := range vals {
			if i != scoreCol {
				row = append(row, v)
			}
		}
		if scoreCol >= 0 {
			if scoreCol >= len(vals) {
				return nil, fmt.Errorf("%w: line %d has no score column", ErrBadInput, rows.line())
			}
			err = b.AddScored(row, vals[scoreCol])
		} else {
			err = b.Add(row)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", rows.line(), err)
		}
	}
	if b == nil {
		return nil, fmt.Errorf("%w: the input has no rows", ErrNotEnoughRows)
	}
	return b.Build()
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; i <= 4096; i++ {
		p, err := br.Peek(i)
		if len(p) < i {
			return 0, err
		}
		if c := p[i-1]; c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != 0xEF && c != 0xBB && c != 0xBF {
			return c, nil
		}
	}
	return 0, io.EOF
}

// rowSource yields rows of values; names are the columns' names once known
// (nil for unnamed arrays).
type rowSource interface {
	next() ([]float32, error)
	names() []string
	line() int
}

type csvRows struct {
	r    *csv.Reader
	head []string
	vals []float32
	ln   int
}

func newCSVRows(r io.Reader) *csvRows {
	c := csv.NewReader(r)
	c.ReuseRecord = true
	c.TrimLeadingSpace = true
	return &csvRows{r: c}
}

func (c *csvRows) names() []string { return c.head }
func (c *csvRows) line() int       { return c.ln }

func (c *csvRows) next() ([]float32, error) {
	if c.head == nil {
		rec, err := c.r.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: header: %v", ErrBadInput, err)
		}
		c.ln++
		c.head = make([]string, len(rec))
		for i, h := range rec {
			c.head[i] = strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")
		}
	}
	rec, err := c.r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	c.ln++
	c.vals = c.vals[:0]
	for i, s := range rec {
		v, err := parseCell(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d column %d (%s): %v", ErrBadInput, c.ln, i+1, c.head[min(i, len(c.head)-1)], err)
		}
		c.vals = append(c.vals, v)
	}
	return c.vals, nil
}

func parseCell(s string) (float32, error) {
	switch strings.ToLower(s) {
	case "", "nan", "na", "null", "none":
		return float32(math.NaN()), nil
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return float32(v), nil
}

type ndjsonRows struct {
	sc    *bufio.Scanner
	ln    int
	head  []string
	index map[string]int
	vals  []float32
}

func (n *ndjsonRows) names() []string { return n.head }
func (n *ndjsonRows) line() int       { return n.ln }

func (n *ndjsonRows) next() ([]float32, error) {
	for n.sc.Scan() {
		n.ln++
		b := bytes.TrimSpace(n.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var err error
		switch b[0] {
		case '[':
			err = n.array(b)
		case '{':
			err = n.object(b)
		default:
			err = errors.New("a line must be a JSON array or object")
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadInput, n.ln, err)
		}
		return n.vals, nil
	}
	if err := n.sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrBadInput, n.ln+1, err)
	}
	return nil, io.EOF
}

func (n *ndjsonRows) array(b []byte) error {
	if n.index != nil {
		return errors.New("an array after object lines")
	}
	var xs []*float64
	if err := json.Unmarshal(b, &xs); err != nil {
		return fmt.Errorf("not an array of numbers: %v", err)
	}
	n.vals = n.vals[:0]
	for _, x := range xs {
		if x == nil {
			n.vals = append(n.vals, float32(math.NaN()))
		} else {
			n.vals = append(n.vals, float32(*x))
		}
	}
	return nil
}

// object reads {"name": number, …}, taking the first object's key order as
// the columns.
func (n *ndjsonRows) object(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	first := n.index == nil
	if first {
		n.index = map[string]int{}
	} else {
		for i := range n.vals {
			n.vals[i] = float32(math.NaN())
		}
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		var x *float64
		if err := dec.Decode(&x); err != nil {
			return fmt.Errorf("%q: not a number: %v", key, err)
		}
		v := float32(math.NaN())
		if x != nil {
			v = float32(*x)
		}
		if first {
			if _, dup := n.index[key]; dup {
				return fmt.Errorf("key %q repeated", key)
			}
			n.index[key] = len(n.head)
			n.head = append(n.head, key)
			n.vals = append(n.vals, v)
			continue
		}
		i, ok := n.index[key]
		if !ok {
			return fmt.Errorf("key %q is not in the first line's columns", key)
		}
		n.vals[i] = v
	}
	return nil
}
