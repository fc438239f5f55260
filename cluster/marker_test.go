package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/registry"
)

// TestNodeRefusesBootstrapOverLostRaftState is issue 12's "a lost Raft
// directory silently becomes a new, empty cluster": a node with a
// registry, whose raft/ (or only its log) is then deleted while other
// state stays, must refuse to start, saying what is missing and how to
// recover; ForceBootstrap starts a new, empty cluster.
func TestNodeRefusesBootstrapOverLostRaftState(t *testing.T) {
	for _, lost := range []string{"raft", filepath.Join("raft", "log")} {
		t.Run(strings.ReplaceAll(lost, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, "n1")
			n, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			waitReady(t, n)
			c := newCmds()
			for _, cmd := range story(c, "fraud") {
				mustApply(t, n, cmd)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "artifacts", "000001.sst"), []byte("model bytes"), 0o600)
			if err := os.RemoveAll(filepath.Join(dir, lost)); err != nil {
				t.Fatal(err)
			}

			_, err = Open(cfg)
			if !errors.Is(err, ErrLostRaftState) {
				t.Fatalf("Open over a lost %s: %v, want ErrLostRaftState", lost, err)
			}
			for _, want := range []string{filepath.Join(dir, "raft") + " has no raft log", "still holds artifacts", "restore " + filepath.Join(dir, "raft"), "--force-bootstrap"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("the error does not say %q:\n%v", want, err)
				}
			}

			cfg.ForceBootstrap = true
			n2 := openNode(t, cfg)
			waitReady(t, n2)
			var models []registry.Model
			n2.FSM().Read(func(s *registry.State) { models = s.Models() })
			if len(models) != 0 {
				t.Fatalf("a forced bootstrap holds %d models, want a new, empty registry", len(models))
			}
		})
	}
}

// TestNodeMarksExistingState: a data dir with Raft state and no marker
// (made before markers existed) gets one at start, so losing its raft/
// later is caught too.
func TestNodeMarksExistingState(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "n1")
	n := openNode(t, cfg)
	waitReady(t, n)
	n.Close()
	if err := os.Remove(filepath.Join(dir, MarkerFile)); err != nil {
		t.Fatalf("the bootstrap wrote no marker: %v", err)
	}
	n = openNode(t, cfg)
	n.Close()
	if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err != nil {
		t.Fatalf("a start with raft state wrote no marker: %v", err)
	}
}
