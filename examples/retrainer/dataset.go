package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"net/url"
)

// Reasons an exported row is not trained on, as counted in a job's skipped
// map.
const (
	skipShadow    = "shadow"     // a shadow version's copy of a served prediction: the same inputs again
	skipBatch     = "batch"      // a multi-row request: its one label cannot say which row it judges
	skipNoInput   = "no_input"   // no input tensor named --input, or one that is not numeric
	skipWidth     = "width"      // another feature count than the first row's
	skipNonFinite = "non_finite" // a NaN or infinite feature (logged as null)
	skipLabel     = "label"      // a label other than 0 or 1
	skipDuplicate = "duplicate"  // the same request id again (a changed label re-exports it)
	skipMalformed = "malformed"  // a line that is not an export row
)

// exportRow is the part of an export line (predlog's NDJSON) the job reads.
type exportRow struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Inputs []struct {
		Name     string          `json:"name"`
		Datatype string          `json:"datatype"`
		Shape    []int64         `json:"shape"`
		Data     json.RawMessage `json:"data"`
	} `json:"inputs"`
	Label  *float64 `json:"label"`
	Cursor string   `json:"cursor"`
}

// dataset is what a job trains on, built row by row from export pages.
// Its digest covers exactly the lines it kept, byte for byte as the node
// sent them (newline included) in export order, so anyone can check it
// by exporting the same cursor range and applying the same rules.
type dataset struct {
	input    string
	features int
	maxRows  int
	holdout  float64

	ids     map[string]bool
	train   rows
	held    rows
	digest  hash.Hash
	skipped map[string]int
	lines   int    // export lines read
	cursor  string // the cursor of the last line read: the export resumes after it
}

// rows is a row-major feature matrix with its labels.
type rows struct {
	x []float32
	y []bool
}

func newDataset(input string, maxRows int, holdout float64) *dataset {
	return &dataset{input: input, maxRows: maxRows, holdout: holdout, ids: map[string]bool{},
		digest: sha256.New(), skipped: map[string]int{}}
}

// kept is the number of rows trained or held out.
func (d *dataset) kept() int { return len(d.train.y) + len(d.held.y) }

// full reports whether --max-rows is reached.
func (d *dataset) full() bool { return d.kept() >= d.maxRows }

// digestHex is "sha256:<hex>" of the kept lines.
func (d *dataset) digestHex() string { return "sha256:" + hex.EncodeToString(d.digest.Sum(nil)) }

// addPage adds the lines of an export page, up to --max-rows, and returns
// how many it read.
func (d *dataset) addPage(page []byte) int {
	n := 0
	for len(page) > 0 && !d.full() {
		line := page
		if i := bytes.IndexByte(page, '\n'); i >= 0 {
			line, page = page[:i+1], page[i+1:]
		} else {
			page = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		d.lines++
		if reason := d.add(line); reason != "" {
			d.skipped[reason]++
		}
	}
	return n
}

// add keeps one export line, or returns why not.
func (d *dataset) add(line []byte) string {
	var r exportRow
	if err := json.Unmarshal(line, &r); err != nil || r.ID == "" {
		return skipMalformed
	}
	if r.Cursor != "" {
		d.cursor = r.Cursor
	}
	// A labelled export has one line per logged prediction of the labelled
	// id: the served one and every shadow's. Training on the shadows'
	// copies would count one transaction several times.
	if r.Role != "champion" && r.Role != "canary" {
		return skipShadow
	}
	if r.Label == nil || (*r.Label != 0 && *r.Label != 1) {
		return skipLabel
	}
	var x []float32
	found := false
	for _, in := range r.Inputs {
		if in.Name != d.input {
			continue
		}
		found = true
		if len(in.Shape) != 2 || in.Shape[0] != 1 {
			return skipBatch
		}
		var vals []*float64
		if err := json.Unmarshal(in.Data, &vals); err != nil || int64(len(vals)) != in.Shape[1] {
			return skipNoInput
		}
		x = make([]float32, len(vals))
		for i, v := range vals {
			if v == nil || math.IsInf(*v, 0) || math.IsNaN(*v) {
				return skipNonFinite
			}
			x[i] = float32(*v)
		}
	}
	if !found || len(x) == 0 {
		return skipNoInput
	}
	if d.features == 0 {
		d.features = len(x)
	}
	if len(x) != d.features {
		return skipWidth
	}
	if d.ids[r.ID] {
		return skipDuplicate
	}
	d.ids[r.ID] = true
	d.digest.Write(line)
	dst := &d.train
	if heldOut(r.ID, d.holdout) {
		dst = &d.held
	}
	dst.x = append(dst.x, x...)
	dst.y = append(dst.y, *r.Label == 1)
	return ""
}

// heldOut picks the held-out rows by a hash of the request id rather than
// by position: labels arrive in any order, and a re-export of the same
// rows splits them the same way.
func heldOut(id string, share float64) bool {
	h := fnv.New64a()
	h.Write([]byte(id))
	return float64(h.Sum64()%10_000) < share*10_000
}

// pull follows the export from the event's cursor until a page comes back
// empty (or --max-rows is reached) and returns the cursor of the last row
// it read: the dataset is exactly the export between since and it.
func (j *job) pull(ctx context.Context, link *url.URL, since string, d *dataset) (string, error) {
	cursor := since
	d.cursor = since
	for !d.full() {
		page, next, attempts, err := j.r.admin.exportPage(ctx, link, cursor, j.r.cfg.PageRows)
		j.update(func(s *JobStatus) { s.ExportCalls++; s.ExportAttempts += attempts })
		if err != nil {
			return cursor, fmt.Errorf("cannot pull the labelled export from cursor %q: %w", cursor, err)
		}
		if d.addPage(page) == 0 {
			break
		}
		if next == cursor {
			// The node handed back the cursor it was given for a page with
			// rows: following it would loop on the same rows.
			return cursor, fmt.Errorf("the export at cursor %q returned rows but no new cursor", cursor)
		}
		cursor = next
	}
	return d.cursor, nil
}
