package predlog

// Role says why a version produced a prediction.
type Role uint8

// Roles. The zero value is RoleUnknown, which Append refuses, so a forgotten
// field never passes for a real role.
const (
	RoleUnknown  Role = iota
	RoleChampion      // served: the champion answered
	RoleCanary        // served: the canary answered (its traffic share)
	RoleShadow        // not served: a shadow version ran on a mirrored copy
)

var roleNames = [...]string{"unknown", "champion", "canary", "shadow"}

// String returns "champion", "canary", "shadow" or "unknown".
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "unknown"
}

// ParseRole maps a role name to a Role; RoleUnknown when unknown.
func ParseRole(s string) Role {
	for r := RoleChampion; r <= RoleShadow; r++ {
		if s == roleNames[r] {
			return r
		}
	}
	return RoleUnknown
}

// Served reports whether the prediction was the one returned to the caller.
func (r Role) Served() bool { return r == RoleChampion || r == RoleCanary }

// Tensor is one logged input or output, in the layout the runtime uses:
// numeric elements little-endian and row-major in Data, BYTES elements in
// Strings.
type Tensor struct {
	Name     string
	DataType string  // Open Inference Protocol name: "FP32", "INT64", "BYTES", ...
	Shape    []int64 // concrete dimensions, none negative
	Data     []byte  // numeric tensors: NumElements(Shape) × element size bytes
	Strings  []string
}

// Record is one prediction served or shadowed.
//
// Append copies everything it needs before returning, so the caller may reuse
// the Record, its tensors and their buffers at once. Records handed out by
// Scan, Export and Lookup are reused between calls of the callback, and their
// Data slices point into Pebble's buffers: copy what you keep. Get returns a
// record that owns its memory.
type Record struct {
	RequestID string
	Model     string
	Version   string
	Role      Role
	Time      int64 // when the request arrived, unix nanoseconds
	Node      string
	Latency   int64 // nanoseconds spent scoring
	Inputs    []Tensor
	Outputs   []Tensor

	// Stamp is the record's commit stamp: unix nanoseconds at commit time,
	// unique and strictly increasing within one log, also across restarts.
	// Reads set it; Append ignores it.
	Stamp int64
}

// Label is the ground truth for one prediction, by request id.
//
// Value is a number because what the labels feed is numeric: log-loss, AUC,
// precision and recall for binary models (0 or 1), error metrics for
// regressions. Classifiers with named classes send the class index.
type Label struct {
	ID    string
	Value float64
	Time  int64 // when the truth became known, unix nanoseconds; 0 = now

	// Stamp is when the log stored this label (unix nanoseconds), the
	// position of the label in the labelled export. Reads set it.
	Stamp int64
}

// Row is one exported prediction, with its label when it has one.
type Row struct {
	Record   Record
	Labelled bool
	Label    Label

	// Cursor resumes an export right after this row: a client that lost the
	// stream passes the cursor of the last row it stored. In a labelled
	// export, the rows of one label all but the last carry the cursor from
	// before the label, so resuming may repeat a row but never skips one.
	Cursor Cursor
}
