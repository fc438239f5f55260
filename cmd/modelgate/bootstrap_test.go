package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/modelgate/modelgate/internal/demo"
)

// TestServeRefusesLostRaftDir is issue 12's "a lost Raft directory silently
// becomes a new, empty cluster": a node that served a model, with its raft/
// deleted and its artifacts and predictions kept, must exit with an error
// saying what is missing and how to recover, not report ready with an
// empty registry; --force-bootstrap starts a new registry seeded from
// --model.
func TestServeRefusesLostRaftDir(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(model, lr, 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, bin, data, "--model", "fraud="+model)
	stopNode(t, n)
	if err := os.RemoveAll(filepath.Join(data, "raft")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--listen", freeAddr(t), "--admin-listen", freeAddr(t), "--raft-listen", freeAddr(t), "--data-dir", data, "--model", "fraud="+model)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the node did not refuse to start over a lost raft dir:\n%s", logs.String())
	}
	if err == nil {
		t.Fatalf("the node exited 0 over a lost raft dir:\n%s", logs.String())
	}
	out := logs.String()
	for _, want := range []string{"has no raft log, term or snapshot", "still holds", "artifacts", "predictions", "--force-bootstrap"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bootstrapped a new cluster") {
		t.Fatalf("the node bootstrapped anyway:\n%s", out)
	}

	n = startNode(t, bin, data, "--model", "fraud="+model, "--force-bootstrap")
	if champ, _ := modelState(t, n, "fraud"); champ != 1 {
		t.Fatalf("after --force-bootstrap: champion v%d, want the --model file as v1", champ)
	}
	if !strings.Contains(n.logs.String(), "level=WARN msg=\"cluster: bootstrapping a new, empty cluster over a data dir whose raft state was lost (forced)") {
		t.Fatalf("the forced bootstrap was not logged at WARN:\n%s", n.logs.String())
	}
}

// TestServeReportsTornRaftLog: a node whose raft WAL was cut inside its
// last record starts (Pebble drops the torn record, as it must) and says
// so at WARN with what was dropped, instead of passing over it.
func TestServeReportsTornRaftLog(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	lr, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "fraud.onnx")
	os.WriteFile(model, lr, 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, bin, data, "--model", "fraud="+model)
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.wait()

	logDir := filepath.Join(data, "raft", "log")
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: logDir})
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL in %s: %v", logDir, err)
	}
	r := logs[len(logs)-1].OpenForRead()
	var last wal.Offset
	for {
		rec, off, err := r.NextRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the WAL: %v", err)
		}
		io.Copy(io.Discard, rec)
		last = off
	}
	r.Close()
	if err := os.Truncate(last.PhysicalFile, last.Physical+30); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, bin, data, "--model", "fraud="+model)
	if !strings.Contains(n.logs.String(), `level=WARN msg="cluster: the raft log's tail was torn`) {
		t.Fatalf("the torn raft log was not reported at WARN:\n%s", n.logs.String())
	}
}
