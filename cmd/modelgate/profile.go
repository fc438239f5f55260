package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelgate/modelgate/drift"
)

func init() {
	register(command{name: "profile", summary: "compute a drift reference profile from a CSV or NDJSON file of training rows", run: runProfile})
}

const profileUsage = `usage: modelgate profile --in FILE [--format csv|ndjson] [--out profile.json] [--feature-names a,b,…]

Reads reference rows (usually the training data) and writes the drift
reference profile to register with a version (its metadata's "profile").
CSV: a header of column names, then rows of numbers. NDJSON: one array of
numbers or one object of name → number per line. Empty, NaN, NA and null
are missing values.

Flags:`

func runProfile(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("profile", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, profileUsage)
		fs.PrintDefaults()
	}
	in := fs.String("in", "", "the rows: a CSV or NDJSON file, or - for stdin (required)")
	format := fs.String("format", "", "csv or ndjson (default: guessed from the first byte)")
	out := fs.String("out", "", "write the profile here (default: stdout)")
	names := fs.String("feature-names", "", "comma-separated column names, in order (default: the CSV header or the NDJSON keys)")
	input := fs.String("input", "", `the model's input tensor the columns belong to (default "input"; the demo model's is "features")`)
	scoreCol := fs.String("score-column", "", "the column holding the model's score, profiled as the output rather than a feature")
	output := fs.String("output", "", `the output tensor's name for --score-column (default "score"; the demo model's is "probability")`)
	threshold := fs.Float64("threshold", 0, "the decision threshold on the score, for the positive rate (default 0.5)")
	categorical := fs.String("categorical", "", "comma-separated columns (names or input[i]) to treat as categorical")
	numeric := fs.String("numeric", "", "comma-separated columns (names or input[i]) to treat as numeric")
	maxRows := fs.Int("max-rows", 0, "keep at most this many rows, a uniform sample beyond (default 200000)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return usageError("--in FILE is required (- for stdin)")
	}
	switch strings.ToLower(*format) {
	case "", drift.FormatCSV, drift.FormatNDJSON, "jsonl":
	default:
		return usageError(fmt.Sprintf("--format %q: want csv or ndjson", *format))
	}
	opts := profileOptions{InputName: *input}
	opts.ScoreColumn = *scoreCol
	opts.Names = splitList(*names)
	opts.Categorical = opts.builderLabels(splitList(*categorical))
	opts.Numeric = opts.builderLabels(splitList(*numeric))
	opts.Output = *output
	opts.Threshold = *threshold
	opts.MaxRows = *maxRows
	if err := opts.Validate(); err != nil {
		return usageError(err.Error())
	}

	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return fmt.Errorf("cannot read the rows: %w", err)
		}
		defer f.Close()
		r = f
	}
	p, err := profileFrom(r, *format, opts)
	if err != nil {
		return fmt.Errorf("cannot compute a profile from %s: %w", *in, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "" || *out == "-" {
		_, err = stdout.Write(b)
	} else {
		err = writeFileAtomic(*out, b)
	}
	if err != nil {
		return fmt.Errorf("cannot write the profile: %w", err)
	}
	nNum, nCat := 0, 0
	for i := range p.Features {
		if p.Features[i].Kind() == drift.Categorical {
			nCat++
		} else {
			nNum++
		}
	}
	dest := "stdout"
	if *out != "" && *out != "-" {
		dest = *out
	}
	score := ""
	if p.Output != nil {
		score = " and the output score"
	}
	fmt.Fprintf(stderr, "profile: %d rows, %d numeric and %d categorical features%s → %s\n", p.Rows, nNum, nCat, score, dest)
	return nil
}

// profileOptions are ProfileFromReader's options plus the input tensor's
// name, which needs the row width (known only after the first row).
type profileOptions struct {
	drift.ReaderOptions
	InputName string
}

// builderLabels turns "<InputName>[i]" labels into the builder's
// "input[i]": the builder names the single input "input" and the profile
// is renamed after it is built.
func (o profileOptions) builderLabels(labels []string) []string {
	if o.InputName == "" {
		return labels
	}
	for i, l := range labels {
		if rest, ok := strings.CutPrefix(l, o.InputName+"["); ok {
			labels[i] = "input[" + rest
		}
	}
	return labels
}

// profileFrom builds the profile. ProfileOptions.Inputs needs the row
// width, known only from the file, so a profile for a named input is built
// with the default single input and renamed.
func profileFrom(r io.Reader, format string, opts profileOptions) (*drift.Profile, error) {
	p, err := drift.ProfileFromReader(r, format, opts.ReaderOptions)
	if err != nil || opts.InputName == "" || len(p.Inputs) != 1 || p.Inputs[0].Name == opts.InputName {
		return p, err
	}
	// Rename the single input: the columns and bins stay as computed.
	old := p.Inputs[0].Name
	p.Inputs[0].Name = opts.InputName
	for i := range p.Features {
		if p.Features[i].Input == old {
			p.Features[i].Input = opts.InputName
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// writeFileAtomic writes b to a temporary file beside path and renames it,
// so a reader never sees half a profile.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
