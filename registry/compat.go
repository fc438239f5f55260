package registry

import (
	"strconv"
	"strings"
)

// SignatureError says a version cannot take the champion's traffic: the
// champion's clients send tensors it does not accept, or read outputs it
// does not give. It unwraps to ErrIncompatibleSignature and to
// ErrIllegalTransition (HTTP 409). Force (promote --force) overrides it.
type SignatureError struct {
	Model     string
	Version   int    // the candidate
	Champion  int    // the version whose clients it must serve
	Action    string // "promote" or "canary"
	Kind      string // "input" or "output"
	Name      string // the tensor
	Want, Got string // the champion's and the candidate's datatype and shape ("" when missing)
	Reason    string
}

// Error names the tensor and both datatypes and shapes.
func (e *SignatureError) Error() string {
	what := "promote " + e.Model + " v" + strconv.Itoa(e.Version)
	if e.Action == "canary" {
		what = "make " + e.Model + " v" + strconv.Itoa(e.Version) + " the canary"
	}
	return "registry: cannot " + what + ": its signature is incompatible with champion v" + strconv.Itoa(e.Champion) +
		"'s: " + e.Reason + "; if its clients change with it, force the move (modelgate model promote --force, or \"force\": true)"
}

// Unwrap returns ErrIncompatibleSignature and ErrIllegalTransition.
func (e *SignatureError) Unwrap() []error {
	return []error{ErrIncompatibleSignature, ErrIllegalTransition}
}

// CheckCompatible reports whether candidate can take the traffic of a
// version whose signature is champion: every input the champion takes, the
// candidate takes by the same name and datatype, accepting every shape the
// champion accepts (same rank; a fixed champion dimension must be the same
// size or dynamic in the candidate, a dynamic one must stay dynamic); it
// needs no input the champion does not take; and every output the
// champion gives, the candidate gives by the same name and datatype, with
// the same rank and no fixed size that differs. Extra outputs are fine:
// clients do not ask for them. It returns nil or a *SignatureError naming
// the first difference (Model, versions and Action are the caller's to
// fill). An empty signature (not known) is not checked.
func CheckCompatible(champion, candidate Signature) *SignatureError {
	if champion.Empty() || candidate.Empty() {
		return nil
	}
	find := func(specs []TensorSpec, name string) (TensorSpec, bool) {
		for _, t := range specs {
			if t.Name == name {
				return t, true
			}
		}
		return TensorSpec{}, false
	}
	for _, want := range champion.Inputs {
		got, ok := find(candidate.Inputs, want.Name)
		if !ok {
			return sigErr("input", want, nil, "it has no input "+strconv.Quote(want.Name)+", which clients send as "+specString(want))
		}
		if got.DataType != want.DataType {
			return sigErr("input", want, &got, "input "+strconv.Quote(want.Name)+" is "+specString(got)+" but clients send "+specString(want))
		}
		if why := accepts(want.Shape, got.Shape); why != "" {
			return sigErr("input", want, &got, "input "+strconv.Quote(want.Name)+" takes "+specString(got)+" but clients send "+specString(want)+" ("+why+")")
		}
	}
	for _, got := range candidate.Inputs {
		if _, ok := find(champion.Inputs, got.Name); !ok {
			return sigErr("input", TensorSpec{Name: got.Name}, &got, "it needs input "+strconv.Quote(got.Name)+" ("+specString(got)+"), which the champion's clients do not send")
		}
	}
	for _, want := range champion.Outputs {
		got, ok := find(candidate.Outputs, want.Name)
		if !ok {
			return sigErr("output", want, nil, "it has no output "+strconv.Quote(want.Name)+", which clients read as "+specString(want))
		}
		if got.DataType != want.DataType || !sameOutputShape(want.Shape, got.Shape) {
			return sigErr("output", want, &got, "output "+strconv.Quote(want.Name)+" is "+specString(got)+" but clients read "+specString(want))
		}
	}
	return nil
}

func sigErr(kind string, want TensorSpec, got *TensorSpec, reason string) *SignatureError {
	e := &SignatureError{Kind: kind, Name: want.Name, Reason: reason}
	if want.DataType != "" {
		e.Want = specString(want)
	}
	if got != nil {
		e.Got = specString(*got)
	}
	return e
}

// accepts says why a candidate input of shape got does not accept every
// shape a champion input of shape want does ("" when it does).
func accepts(want, got []int64) string {
	if len(want) != len(got) {
		return "rank " + strconv.Itoa(len(got)) + ", not " + strconv.Itoa(len(want))
	}
	for i, w := range want {
		g := got[i]
		switch {
		case g == -1, g == w:
		case w == -1:
			return "dimension " + strconv.Itoa(i) + " is fixed at " + strconv.FormatInt(g, 10) + " where clients may send any size"
		default:
			return "dimension " + strconv.Itoa(i) + " is " + strconv.FormatInt(g, 10) + ", not " + strconv.FormatInt(w, 10)
		}
	}
	return ""
}

func sameOutputShape(want, got []int64) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i] != -1 && got[i] != -1 && want[i] != got[i] {
			return false
		}
	}
	return true
}

// specString writes a tensor's datatype and shape: FP32 [-1,30].
func specString(t TensorSpec) string {
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.FormatInt(d, 10)
	}
	return t.DataType + " [" + strings.Join(dims, ",") + "]"
}
