package registry

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"time"
)

// Stage is where a version is in its life. The legal moves between stages
// are in transitions.go (and in the package documentation).
type Stage string

// The stages. A version starts registered; validated, shadow, canary,
// champion, retired and rolled_back all mean it passed validation; failed
// means it did not, and is terminal (it can only be deleted).
const (
	StageRegistered Stage = "registered"  // artifact known, validation not done
	StageValidated  Stage = "validated"   // passed validation, takes no traffic
	StageShadow     Stage = "shadow"      // receives a mirrored copy of traffic; its answers are compared, never returned
	StageCanary     Stage = "canary"      // answers a weighted share of real traffic (the canary alias)
	StageChampion   Stage = "champion"    // answers the rest of the traffic (the champion alias)
	StageRetired    Stage = "retired"     // was serving or was parked; takes no traffic
	StageFailed     Stage = "failed"      // failed validation; can only be deleted
	StageRolledBack Stage = "rolled_back" // was the champion and was rolled back
)

// Stages lists every stage in life order.
var Stages = []Stage{StageRegistered, StageValidated, StageShadow, StageCanary, StageChampion, StageRetired, StageFailed, StageRolledBack}

// Valid reports whether s is one of the stages.
func (s Stage) Valid() bool { return slices.Contains(Stages, s) }

// TensorSpec is one input or output of a version's signature. The registry
// keeps its own plain copy of what ONNX Runtime reports, so it does not
// depend on the runtime package.
type TensorSpec struct {
	Name string `json:"name"`
	// DataType is the Open Inference Protocol name: BOOL, UINT8, UINT16,
	// UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64 or BYTES.
	DataType string `json:"datatype"`
	// Shape has -1 for a dynamic dimension; empty for a scalar.
	Shape []int64 `json:"shape"`
}

// Signature is a version's interface. A validated version always has at
// least one input and one output.
type Signature struct {
	Inputs  []TensorSpec `json:"inputs,omitempty"`
	Outputs []TensorSpec `json:"outputs,omitempty"`
}

// Empty reports whether the signature names no inputs and no outputs.
func (s Signature) Empty() bool { return len(s.Inputs) == 0 && len(s.Outputs) == 0 }

// Lineage is where a version came from: the data and code that produced it
// and who registered it. It is what lets a prediction be traced to its
// model, data and code.
type Lineage struct {
	DatasetURI      string             `json:"dataset_uri,omitempty"`
	DatasetVersion  string             `json:"dataset_version,omitempty"`
	DatasetDigest   string             `json:"dataset_digest,omitempty"`
	CodeRepo        string             `json:"code_repo,omitempty"`
	CodeCommit      string             `json:"code_commit,omitempty"`
	TrainingMetrics map[string]float64 `json:"training_metrics,omitempty"`
	// ParentVersion is the version of the same model this one was trained
	// from (0: none). It must be a number the model had already given out.
	ParentVersion int    `json:"parent_version,omitempty"`
	RegisteredBy  string `json:"registered_by,omitempty"`
	Notes         string `json:"notes,omitempty"`
}

// Validation is the recorded outcome of a version's validation gate.
type Validation struct {
	Passed bool      `json:"passed"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
	// Evidence is what the gate measured (opaque JSON: load time, smoke run
	// latency, golden-pair errors, the failure message …).
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// PendingTransition is a move proposed automatically (by the lifecycle
// controller) that the model's policy says a person must approve. It stays on
// the version until an approve or reject command, or until a person moves
// the version directly.
type PendingTransition struct {
	To          Stage           `json:"to"`               // shadow, canary or champion
	Weight      float64         `json:"weight,omitempty"` // the canary weight in percent, when To is canary
	Force       bool            `json:"force,omitempty"`  // the request forced past a signature incompatibility
	RequestedBy string          `json:"requested_by"`
	RequestedAt time.Time       `json:"requested_at"`
	Reason      string          `json:"reason,omitempty"`
	Evidence    json.RawMessage `json:"evidence,omitempty"`
}

// Version is one immutable artifact of a model and where it is in its life.
// Everything but Stage, Validation, Pending, Signature (set once, at
// validation, when registration did not carry it) and Updated is fixed at
// registration.
type Version struct {
	Model     string    `json:"model"`
	Number    int       `json:"version"`
	Digest    string    `json:"digest"` // sha256 of the ONNX bytes, 64 lowercase hex characters
	Size      int64     `json:"size"`   // bytes
	Signature Signature `json:"signature"`
	Lineage   Lineage   `json:"lineage"`
	// ReferenceProfile is the drift reference (feature histograms and
	// quantiles of the training data), opaque here: the drift package owns
	// its format.
	ReferenceProfile json.RawMessage `json:"reference_profile,omitempty"`
	// BootstrappedReference is a reference profile drawn from the version's
	// traffic (set_reference) when none was registered.
	BootstrappedReference json.RawMessage `json:"bootstrapped_reference,omitempty"`
	// Golden holds input/output pairs the validation gate checks (opaque here).
	Golden     json.RawMessage    `json:"golden,omitempty"`
	Stage      Stage              `json:"stage"`
	Validation *Validation        `json:"validation,omitempty"`
	Pending    *PendingTransition `json:"pending_approval,omitempty"`
	Created    time.Time          `json:"created"`
	Updated    time.Time          `json:"updated"` // time of the last stage change
	// Holders are the nodes that hold the version's bytes, sorted: the
	// node that registered it, then every node that reported it ready.
	Holders []string `json:"holders,omitempty"`
	// ReadyOn are the nodes that fetched, verified and validated the
	// version's bytes (report_ready), sorted by node.
	ReadyOn []NodeReport `json:"ready_on,omitempty"`
	// FailedOn are the nodes whose own validation gate refused the bytes,
	// with the reason, sorted by node.
	FailedOn []NodeReport `json:"failed_on,omitempty"`
}

// Model is a named model: its versions, its aliases, its policy. Values
// returned by State's read methods are deep copies the caller owns.
type Model struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Policy  Policy    `json:"policy"`
	// Versions in ascending number; deleted versions are gone.
	Versions []Version `json:"versions"`
	// NextVersion is the number the next registered version gets. Numbers
	// are never reused, even after a delete.
	NextVersion int `json:"next_version"`
	// Champion is the champion alias: the version in stage champion, or 0
	// before any version has passed validation. Once set it is never 0 again.
	Champion int `json:"champion"`
	// Canary is the canary alias (0: none) and CanaryWeight the percentage
	// of traffic, 0–100 in steps of 0.01 (one basis point), it answers. CanaryWeight is 0 when Canary is 0.
	Canary       int     `json:"canary"`
	CanaryWeight float64 `json:"canary_weight"`
	// PreviousChampions is the rollback stack: the most recent former
	// champion last. It holds only versions that still exist and are not
	// the champion.
	PreviousChampions []int `json:"previous_champions,omitempty"`
	// LastAlerts is the time of the last record_alert of each kind (for
	// cooldowns that must survive a leader change).
	LastAlerts map[string]time.Time `json:"last_alerts,omitempty"`
}

// Version returns the version numbered n and true, or false.
func (m *Model) Version(n int) (Version, bool) {
	i := m.index(n)
	if i < 0 {
		return Version{}, false
	}
	return m.Versions[i].clone(), true
}

// index returns the position of version n in m.Versions, or -1.
func (m *Model) index(n int) int {
	i := sort.Search(len(m.Versions), func(i int) bool { return m.Versions[i].Number >= n })
	if i < len(m.Versions) && m.Versions[i].Number == n {
		return i
	}
	return -1
}

// cow copies m for a command to modify: every field a command may change is
// copied; the immutable parts of versions (signature, lineage, profiles,
// evidence) are shared, since nothing modifies them in place.
func (m *Model) cow() *Model {
	c := *m
	c.Versions = slices.Clone(m.Versions)
	c.PreviousChampions = slices.Clone(m.PreviousChampions)
	c.LastAlerts = maps.Clone(m.LastAlerts)
	return &c
}

// clone is a deep copy, for handing to callers.
func (m *Model) clone() Model {
	c := *m
	c.Policy = m.Policy.clone()
	c.Versions = make([]Version, len(m.Versions))
	for i := range m.Versions {
		c.Versions[i] = m.Versions[i].clone()
	}
	c.PreviousChampions = slices.Clone(m.PreviousChampions)
	c.LastAlerts = maps.Clone(m.LastAlerts)
	return c
}

// clone is a deep copy of v.
func (v *Version) clone() Version {
	c := *v
	c.Signature = v.Signature.clone()
	c.Lineage.TrainingMetrics = maps.Clone(v.Lineage.TrainingMetrics)
	c.ReferenceProfile = cloneRaw(v.ReferenceProfile)
	c.BootstrappedReference = cloneRaw(v.BootstrappedReference)
	c.Golden = cloneRaw(v.Golden)
	c.Holders = slices.Clone(v.Holders)
	c.ReadyOn = slices.Clone(v.ReadyOn)
	c.FailedOn = slices.Clone(v.FailedOn)
	if v.Validation != nil {
		x := *v.Validation
		x.Evidence = cloneRaw(x.Evidence)
		c.Validation = &x
	}
	if v.Pending != nil {
		x := *v.Pending
		x.Evidence = cloneRaw(x.Evidence)
		c.Pending = &x
	}
	return c
}

func (s Signature) clone() Signature {
	return Signature{Inputs: cloneSpecs(s.Inputs), Outputs: cloneSpecs(s.Outputs)}
}

func (s Signature) equal(o Signature) bool {
	eq := func(a, b []TensorSpec) bool {
		return slices.EqualFunc(a, b, func(x, y TensorSpec) bool {
			return x.Name == y.Name && x.DataType == y.DataType && slices.Equal(x.Shape, y.Shape)
		})
	}
	return eq(s.Inputs, o.Inputs) && eq(s.Outputs, o.Outputs)
}

// cloneSpecs copies specs; an empty list becomes nil and an empty shape
// becomes a non-nil empty slice, so a state built by commands and the same
// state restored from its snapshot hold identical values.
func cloneSpecs(specs []TensorSpec) []TensorSpec {
	if len(specs) == 0 {
		return nil
	}
	c := make([]TensorSpec, len(specs))
	for i, t := range specs {
		c[i] = TensorSpec{Name: t.Name, DataType: t.DataType, Shape: append([]int64{}, t.Shape...)}
	}
	return c
}

func cloneRaw(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage{}, b...)
}
