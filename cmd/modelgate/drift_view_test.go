package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/gateway"
)

// TestDriftCommandSaysWhichView: in a cluster `modelgate drift` names the
// view it prints — the cluster's merge with its nodes (stale ones named
// apart) or one node's own — and --cluster and --node ask for them; a
// single node's answer (no view) prints no such line.
func TestDriftCommandSaysWhichView(t *testing.T) {
	rep := shiftedReport(t)
	views := map[string]gateway.DriftView{
		"consistent=true": {View: gateway.ViewCluster, Node: "n1", Nodes: []gateway.StatsNode{{ID: "n1"}, {ID: "n2"}, {ID: "n3", Stale: true}}},
		"node=n2":         {View: gateway.ViewNode, Node: "n2"},
		"":                {Node: "solo"},
	}
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		v, ok := views[r.URL.RawQuery]
		if !ok || r.URL.Path != "/api/v1/models/fraud/versions/3/drift" {
			http.Error(w, `{"error":"not found"}`, 404)
			return
		}
		v.Model, v.Version, v.Status, v.Summary, v.Report = "fraud", 3, rep.Status, "DRIFT: stand-in", rep
		b, _ := json.Marshal(v)
		w.Write(b)
	}))
	defer srv.Close()
	cli := []string{"--version", "3", "--admin", srv.URL, "--token", "tok"}
	f := func(want, not string, args ...string) {
		t.Helper()
		out, _, err := runCmd(t, append(append([]string{"drift", "fraud"}, args...), cli...)...)
		if err != nil {
			t.Fatalf("drift %v: %v\n%s", args, err, out)
		}
		if want != "" && !strings.Contains(out, want) || not != "" && strings.Contains(out, not) {
			t.Fatalf("drift %v: output\n%s\nwant %q, not %q", args, out, want, not)
		}
	}
	f("view: the cluster's, merged on the leader n1 from nodes n1, n2 (left out, no push for too long: n3)\n", "", "--cluster")
	f("view: node n2's own traffic (the leader judges the cluster's: --cluster)\n", "", "--node", "n2")
	f("", "view:")
}
