package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/registry"
)

type auditPage struct {
	Records      []registry.AuditRecord `json:"records"`
	Next         uint64                 `json:"next"`
	Archived     int                    `json:"archived"`
	RetainedFrom uint64                 `json:"retained_from"`
}

func (n *node) audit(t *testing.T, query string) auditPage {
	t.Helper()
	code, b := n.api(t, "GET", "/api/v1/audit?"+query, nil, "")
	var p auditPage
	if code != 200 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("GET /api/v1/audit?%s: %d %.300s", query, code, b)
	}
	return p
}

// TestAuditRetentionArchives: a real node with --audit-keep 10 trims its
// registry's audit log, and GET /api/v1/audit still returns every record
// from seq 1, the old ones from the node's archive (and says how many),
// with the same filters and paging; after a SIGKILL and a restart
// without the retention flags the archive still answers.
func TestAuditRetentionArchives(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(model, lr, 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, bin, data, "--model", "fraud="+model, "--audit-keep", "10", "--audit-trim-interval", "50ms")
	for i := 0; i < 30; i++ { // one set_policy record each
		if code, b := n.api(t, "PUT", fmt.Sprintf("/api/v1/models/fraud/policy?reason=r%d", i), strings.NewReader(`{}`), "application/json"); code != 200 {
			t.Fatalf("PUT policy: %d %s", code, b)
		}
	}
	// The leader trims once 10/10 = 1 record is past the bound; a minute
	// only a hang exceeds.
	for deadline := time.Now().Add(time.Minute); n.audit(t, "limit=1").RetainedFrom < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("no trim a minute after 30 writes with --audit-keep 10:\n%s", n.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := n.audit(t, "limit=10000")
	if all.RetainedFrom < 20 || all.Archived < 19 || all.Records[0].Seq != 1 || all.Records[0].Action != registry.ActionCreateModel {
		t.Fatalf("retained_from %d, archived %d, first record %+v", all.RetainedFrom, all.Archived, all.Records[0])
	}
	for i, r := range all.Records {
		if r.Seq != uint64(i)+1 {
			t.Fatalf("record %d has seq %d: a gap between the archive and the registry", i+1, r.Seq)
		}
	}
	trims := 0
	for _, r := range all.Records {
		if r.Action == registry.ActionTrimAudit {
			trims++
		}
	}
	if trims == 0 {
		t.Fatal("no trim_audit record in the log")
	}
	// Paging with filters crosses from the archive into the registry.
	var paged []registry.AuditRecord
	for since := uint64(0); ; {
		p := n.audit(t, fmt.Sprintf("model=fraud&limit=7&since=%d", since))
		if len(p.Records) == 0 {
			break
		}
		paged = append(paged, p.Records...)
		since = p.Next
	}
	var want []uint64
	for _, r := range all.Records {
		if r.Model == "fraud" {
			want = append(want, r.Seq)
		}
	}
	if len(paged) != len(want) || paged[0].Seq != want[0] || paged[len(paged)-1].Seq != want[len(want)-1] {
		t.Fatalf("paged by 7 with model=fraud: %d records, want %d (%v)", len(paged), len(want), want)
	}
	old := n.audit(t, "model=fraud&version=1&limit=3")
	if old.Archived != 3 || old.Records[0].Version != 1 {
		t.Fatalf("v1's first records: archived %d, %+v", old.Archived, old.Records)
	}

	n.cmd.Process.Signal(syscall.SIGKILL) // the archive's writes are synced
	n.wait()
	n = startNode(t, bin, data, "--model", "fraud="+model)
	again := n.audit(t, fmt.Sprintf("limit=%d", len(all.Records)))
	a, _ := json.Marshal(all.Records)
	b, _ := json.Marshal(again.Records)
	if string(a) != string(b) {
		t.Fatalf("after a restart the audit API answers differently:\n%.400s\n%.400s", a, b)
	}
}

// TestBootstrappedReferenceSurvivesTrimAndRestart: a reference sampled
// from a version's first rows is kept in the version's registry state, so
// after its drift_reference audit record has been trimmed out of the
// registry, a restarted node monitors against it (it does not bootstrap
// again).
func TestBootstrappedReferenceSurvivesTrimAndRestart(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, _ := demo.FraudModel(demo.DefaultSeed)
	model := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(model, lr, 0o644)
	data := filepath.Join(dir, "data")
	args := []string{"--model", "fraud=" + model, "--audit-keep", "3", "--audit-trim-interval", "50ms", "--drift-window", "500ms"}
	n := startNode(t, bin, data, args...)
	pol := `{"drift":{"reference_sample_size":100,"reference_period":"0s"}}`
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(pol), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	v2, _ := demo.FraudModel(demo.DefaultSeed + 1)
	if code, b := n.register(t, "fraud", v2, ""); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/promote", strings.NewReader(`{"version":2}`), "application/json"); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	// Deadlines only a hang exceeds.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a minute without %s:\n%s", what, n.logs)
			}
		}
	}
	monitored := func() bool {
		code, _ := n.api(t, "GET", "/api/v1/models/fraud/drift?version=2", nil, "")
		return code == 200
	}
	waitFor("v2 monitored", monitored)
	calm := fraud.NewGenerator(21)
	resp, err := http.Post("http://"+n.addr+"/v2/models/fraud/versions/2/infer", "application/json", bytes.NewReader(txBody(calm, "ref", 120)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ver registry.Version
	waitFor("v2's bootstrapped reference in the registry", func() bool {
		_, b := n.api(t, "GET", "/api/v1/models/fraud/versions/2", nil, "")
		return json.Unmarshal(b, &ver) == nil && len(ver.BootstrappedReference) > 0
	})
	var refSeq uint64
	for _, r := range n.audit(t, "model=fraud&version=2&limit=10000").Records {
		if r.Kind == registry.KindDriftReference {
			refSeq = r.Seq
			if bytes.Contains(r.Evidence, []byte("features")) {
				t.Fatalf("the drift_reference record still carries the profile: %.200s", r.Evidence)
			}
		}
	}
	if refSeq == 0 {
		t.Fatal("no drift_reference audit record")
	}
	for i := 0; i < 6; i++ {
		n.api(t, "PUT", fmt.Sprintf("/api/v1/models/fraud/policy?reason=push%d", i), strings.NewReader(`{}`), "application/json")
	}
	waitFor("the drift_reference record trimmed", func() bool { return n.audit(t, "limit=1").RetainedFrom > refSeq })

	n.cmd.Process.Signal(syscall.SIGKILL)
	n.wait()
	n = startNode(t, bin, data, args...)
	waitFor("v2 monitored after the restart", monitored)
	_, b := n.api(t, "GET", "/api/v1/models/fraud/drift?version=2", nil, "")
	var v struct{ Status string }
	if json.Unmarshal(b, &v) != nil || v.Status == "bootstrapping" {
		t.Fatalf("after the restart v2 bootstraps again instead of using its kept reference: %.300s", b)
	}
}
