package routing

import (
	"sort"

	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

// LogMode is how a model's predictions are logged.
type LogMode uint8

// The log modes (registry.LogAsync, LogDurable, LogOff on the wire).
const (
	LogAsync LogMode = iota
	LogDurable
	LogOff
)

// ParseLogMode maps the registry's mode names to a LogMode; anything else
// is the default, async.
func ParseLogMode(s string) LogMode {
	switch s {
	case registry.LogDurable:
		return LogDurable
	case registry.LogOff:
		return LogOff
	}
	return LogAsync
}

// Version is one loaded version in the table: its slot and what the node
// attaches to it (metrics, drift state), which routing never looks at.
type Version[A any] struct {
	Slot   *runtime.Slot
	Attach A
}

// Model is one model's routing. It is immutable once in a published Table.
type Model[A any] struct {
	Name    string
	LogMode LogMode
	// Champion answers the unversioned calls the canary does not; nil
	// until a version is ready (such calls get 503).
	Champion *Version[A]
	// Canary, when set, answers CanaryBP basis points of the unversioned
	// calls, chosen by routing key.
	Canary   *Version[A]
	CanaryBP uint32
	// Shadows get a mirrored copy of what the champion answers.
	Shadows []*Version[A]
	// versions is every loaded version, by name: champion, canary,
	// shadows, the warm standby. Each answers calls that name it.
	versions map[string]*Version[A]
}

// Version returns the loaded version named v, or nil.
func (m *Model[A]) Version(v string) *Version[A] { return m.versions[v] }

// Pick returns the version that answers an unversioned call with routing
// key key: the canary for its share of keys, else the champion (nil when
// the model has none).
func (m *Model[A]) Pick(key []byte) *Version[A] {
	if m.Canary != nil && ToCanary(key, m.CanaryBP) {
		return m.Canary
	}
	return m.Champion
}

// Versions returns the loaded versions in version order (numerically when
// the names are numbers).
func (m *Model[A]) Versions() []*Version[A] {
	vs := make([]*Version[A], 0, len(m.versions))
	for _, v := range m.versions {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i].Slot.Version, vs[j].Slot.Version) })
	return vs
}

// Table is an immutable routing table: the scoring path loads it with one
// atomic read and never locks. A Router is its only writer and replaces it
// whole.
type Table[A any] struct {
	models map[string]*Model[A]
}

// Model returns the named model's routing, or nil.
func (t *Table[A]) Model(name string) *Model[A] { return t.models[name] }

// Models returns every model, by name.
func (t *Table[A]) Models() []*Model[A] {
	ms := make([]*Model[A], 0, len(t.models))
	for _, m := range t.models {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return ms
}

func (t *Table[A]) clone() *Table[A] {
	n := &Table[A]{models: make(map[string]*Model[A], len(t.models)+1)}
	for k, v := range t.models {
		n.models[k] = v
	}
	return n
}

func (m *Model[A]) clone() *Model[A] {
	n := *m
	n.Shadows = append([]*Version[A](nil), m.Shadows...)
	n.versions = make(map[string]*Version[A], len(m.versions)+1)
	for k, v := range m.versions {
		n.versions[k] = v
	}
	return &n
}

// versionLess orders version names numerically when both are numbers
// (registry versions are 1, 2, …; OIP versions are strings), else by name.
func versionLess(a, b string) bool {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) < len(b)
	}
	return a < b
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
