package registry

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Trace tests, in the style of etcd-io/raft's datadriven tests: each file in
// testdata/*.txt is a story of commands and what the registry answered.
//
//	# a comment
//	promote model=fraud v=2 as=bob reason="auc up"
//	----
//	ok: fraud v2 champion
//	#7 bob promote fraud v2 canary → champion "auc up"
//	#8 bob retire fraud v1 champion → retired "replaced as champion by v2"
//
// A write prints its result (or "error: …") and the audit records it
// appended. Run with -rewrite to regenerate the expected output after a
// deliberate change, then read the diff.
var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

func TestTraces(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no trace files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTrace(t, file)
		})
	}
}

type traceCase struct {
	head   []string // comments and the command line
	cmd    string
	want   string
	lineNo int
}

func parseTrace(t *testing.T, file string) []traceCase {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var cases []traceCase
	var c traceCase
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case c.cmd == "" && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == ""):
			c.head = append(c.head, line)
		case c.cmd == "":
			c.cmd, c.lineNo = line, i+1
			c.head = append(c.head, line)
			if i+1 >= len(lines) || lines[i+1] != "----" {
				t.Fatalf("%s:%d: command not followed by ----", file, i+1)
			}
			i++
			var out []string
			for i+1 < len(lines) && lines[i+1] != "" {
				i++
				out = append(out, lines[i])
			}
			c.want = strings.Join(out, "\n")
			cases = append(cases, c)
			c = traceCase{}
		}
	}
	return cases
}

func runTrace(t *testing.T, file string) {
	cases := parseTrace(t, file)
	tr := &tracer{s: New(), now: t0}
	var out strings.Builder
	failed := false
	for _, c := range cases {
		got := tr.run(t, c.cmd)
		if got != c.want && !*rewrite {
			t.Errorf("%s:%d: %s\n--- got\n%s\n--- want\n%s", file, c.lineNo, c.cmd, got, c.want)
			failed = true
		}
		out.WriteString(strings.Join(c.head, "\n") + "\n----\n")
		if got != "" {
			out.WriteString(got + "\n")
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if failed {
		t.Log("if the change is deliberate, run go test ./registry -run TestTraces -rewrite")
	}
}

type tracer struct {
	s    *State
	now  time.Time
	keys int
	last Command
}

// run executes one trace line and returns what it printed.
func (tr *tracer) run(t *testing.T, line string) string {
	words, err := splitWords(line)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	op, kv := words[0], map[string]string{}
	for _, w := range words[1:] {
		k, v, _ := strings.Cut(w, "=")
		kv[k] = v
	}
	num := func(k string) int {
		if kv[k] == "" {
			return 0
		}
		n, err := strconv.Atoi(kv[k])
		if err != nil {
			t.Fatalf("%s: %s=%q is not a number", line, k, kv[k])
		}
		return n
	}
	fnum := func(k string) float64 {
		if kv[k] == "" {
			return 0
		}
		f, err := strconv.ParseFloat(kv[k], 64)
		if err != nil {
			t.Fatalf("%s: %s=%q is not a number", line, k, kv[k])
		}
		return f
	}
	_, auto := kv["auto"]
	model, v, reason := kv["model"], num("v"), kv["reason"]
	var args Args
	switch op {
	case "create":
		args = &CreateModelArgs{Model: model, Reason: reason}
	case "register":
		a := &RegisterArgs{Model: model, Digest: digestOf(num("seed")), Size: int64(1000 + num("seed")), Reason: reason,
			Lineage: Lineage{ParentVersion: num("parent"), DatasetURI: kv["dataset"]}}
		if _, nosig := kv["nosig"]; !nosig {
			a.Signature = testSignature()
		}
		args = a
	case "validate":
		_, fail := kv["fail"]
		a := &SetValidationArgs{Model: model, Version: v, Passed: !fail, Reason: reason, Evidence: []byte(kv["evidence"])}
		if _, sig := kv["sig"]; sig {
			a.Signature = testSignature()
		}
		args = a
	case "stage":
		args = &SetStageArgs{Model: model, Version: v, Stage: Stage(kv["to"]), Weight: fnum("weight"), Auto: auto, Reason: reason}
	case "promote":
		args = &PromoteArgs{Model: model, Version: v, Auto: auto, Reason: reason}
	case "rollback":
		args = &RollbackArgs{Model: model, Auto: auto, Reason: reason}
	case "approve":
		args = &ApproveArgs{Model: model, Version: v, Reason: reason}
	case "reject":
		args = &RejectArgs{Model: model, Version: v, Reason: reason}
	case "delete":
		args = &DeleteVersionArgs{Model: model, Version: v, Reason: reason}
	case "policy":
		p := DefaultPolicy()
		if kv["mode"] != "" {
			p.Promotion.Mode = PromotionMode(kv["mode"])
		}
		if a, ok := kv["approval"]; ok {
			steps := strings.Split(a, ",")
			p.Promotion.Shadow.RequireApproval = slices.Contains(steps, "shadow")
			p.Promotion.Canary.RequireApproval = slices.Contains(steps, "canary")
			p.Promotion.Champion.RequireApproval = slices.Contains(steps, "champion")
		}
		if kv["psi"] != "" {
			p.Drift.PSI.Threshold, _ = strconv.ParseFloat(kv["psi"], 64)
		}
		args = &SetPolicyArgs{Model: model, Policy: p, Reason: reason}
	case "alert":
		args = &RecordAlertArgs{Model: model, Version: v, Kind: kv["kind"], Reason: reason, Evidence: []byte(kv["evidence"])}
	case "retry":
		c := tr.last
		c.Time = tr.now.Add(time.Second)
		return tr.apply(c)
	case "show":
		return tr.show(model)
	case "routing":
		return tr.routing()
	case "audit":
		var b strings.Builder
		for _, r := range tr.s.Audit(AuditFilter{Model: model, Version: v, Since: uint64(num("since")), Limit: num("limit")}) {
			b.WriteString(auditLine(r) + "\n")
		}
		return strings.TrimRight(b.String(), "\n")
	default:
		t.Fatalf("%s: unknown trace command %q", line, op)
	}
	tr.now = tr.now.Add(time.Minute)
	tr.keys++
	actor := kv["as"]
	if actor == "" {
		actor = "alice"
	}
	c := Command{Time: tr.now, Actor: actor, IdempotencyKey: "k" + strconv.Itoa(tr.keys), Args: args}
	tr.last = c
	return tr.apply(c)
}

func (tr *tracer) apply(c Command) string {
	before := tr.s.LastSeq()
	res, err := tr.s.Apply(c)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	b.WriteString("ok: " + res.Model)
	if res.Version != 0 {
		b.WriteString(" v" + strconv.Itoa(res.Version))
	}
	if res.Stage != "" {
		b.WriteString(" " + string(res.Stage))
	}
	if res.PendingApproval {
		b.WriteString(" (waiting for approval)")
	}
	if res.Replayed {
		b.WriteString(" (replayed: nothing applied)")
	}
	for _, r := range tr.s.Audit(AuditFilter{Since: before}) {
		b.WriteString("\n" + auditLine(r))
	}
	return b.String()
}

func auditLine(r AuditRecord) string {
	s := fmt.Sprintf("#%d %s %s %s", r.Seq, r.Actor, r.Action, r.Model)
	if r.Version != 0 {
		s += " v" + strconv.Itoa(r.Version)
	}
	if r.Kind != "" {
		s += " " + r.Kind
	}
	switch {
	case r.From != "" && r.To != "":
		s += " " + string(r.From) + " → " + string(r.To)
	case r.To != "":
		s += " → " + string(r.To)
	case r.From != "":
		s += " (was " + string(r.From) + ")"
	}
	if r.To == StageCanary {
		s += " weight " + FormatWeight(r.Weight)
	}
	if r.Auto {
		s += " (auto)"
	}
	if r.Reason != "" {
		s += " " + strconv.Quote(r.Reason)
	}
	if r.Evidence != nil && r.Action != ActionCreateModel && r.Action != ActionSetPolicy && r.Action != ActionRegister {
		s += " " + string(r.Evidence)
	}
	return s
}

func (tr *tracer) show(name string) string {
	m, err := tr.s.Model(name)
	if err != nil {
		return "error: " + err.Error()
	}
	alias := func(n int) string {
		if n == 0 {
			return "none"
		}
		return "v" + strconv.Itoa(n)
	}
	s := fmt.Sprintf("%s: champion %s, canary %s", m.Name, alias(m.Champion), alias(m.Canary))
	if m.Canary != 0 {
		s += " (weight " + FormatWeight(m.CanaryWeight) + ")"
	}
	s += fmt.Sprintf(", previous %v, next v%d", m.PreviousChampions, m.NextVersion)
	for _, v := range m.Versions {
		s += fmt.Sprintf("\n  v%d %s", v.Number, v.Stage)
		if p := v.Pending; p != nil {
			s += fmt.Sprintf(" (waiting: %s", p.To)
			if p.To == StageCanary {
				s += " weight " + FormatWeight(p.Weight)
			}
			s += " requested by " + p.RequestedBy + ")"
		}
	}
	return s
}

func (tr *tracer) routing() string {
	var b strings.Builder
	rv := tr.s.RoutingView()
	fmt.Fprintf(&b, "seq %d", rv.Seq)
	for _, m := range rv.Models {
		fmt.Fprintf(&b, "\n%s:", m.Model)
		if len(m.Versions) == 0 {
			b.WriteString(" nothing to serve")
		}
		for _, v := range m.Versions {
			fmt.Fprintf(&b, " v%d=%s", v.Version, v.Role)
			if v.Role == RoleCanary {
				fmt.Fprintf(&b, "(%s%%)", FormatWeight(v.Weight))
			}
		}
	}
	return b.String()
}

// splitWords splits on spaces, keeping key="quoted value" together (a
// quote opens a value only right after "=").
func splitWords(line string) ([]string, error) {
	var words []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		sp := strings.IndexByte(line, ' ')
		q := strings.Index(line, `="`)
		if q < 0 || sp >= 0 && sp < q {
			if sp < 0 {
				return append(words, line), nil
			}
			words = append(words, line[:sp])
			line = line[sp:]
			continue
		}
		i := q + 1 // the opening quote
		j := i + 1
		for ; j < len(line) && line[j] != '"'; j++ {
			if line[j] == '\\' {
				j++
			}
		}
		if j >= len(line) {
			return nil, fmt.Errorf("unterminated quote")
		}
		v, err := strconv.Unquote(line[i : j+1])
		if err != nil {
			return nil, err
		}
		words = append(words, line[:i]+v)
		line = line[j+1:]
	}
	return words, nil
}
