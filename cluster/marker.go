package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// MarkerFile is the file, in the data dir but outside raft/, that says the
// dir has been a cluster member. Raft's own state cannot say it: when raft/
// (or its log) is lost, what is left looks like a first start, and a node
// would bootstrap a new, empty cluster over artifacts and predictions whose
// registry is gone.
const MarkerFile = "cluster.json"

// marker is MarkerFile's content.
type marker struct {
	NodeID string    `json:"node_id"`
	Since  time.Time `json:"since"`
	Note   string    `json:"note,omitempty"`
}

func readMarker(dataDir string) (marker, error) {
	var m marker
	b, err := os.ReadFile(filepath.Join(dataDir, MarkerFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		// Present but unreadable still says the dir was a member.
		return marker{Note: "unreadable: " + err.Error()}, nil
	}
	return m, nil
}

// writeMarker writes the marker durably (temp file, fsync, rename, fsync of
// the dir): it must exist before the raft state it vouches for is used.
func writeMarker(dataDir string, m marker) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	path := filepath.Join(dataDir, MarkerFile)
	tmp := path + ".tmp"
	err := func() error {
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, werr := f.Write(append(b, '\n'))
		return errors.Join(werr, f.Sync(), f.Close(), os.Rename(tmp, path), syncDir(dataDir))
	}()
	if err != nil {
		return fmt.Errorf("cluster: cannot write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// lostRaftState says what is missing and how to recover.
func lostRaftState(dataDir string, m marker) error {
	var others []string
	if ents, err := os.ReadDir(dataDir); err == nil {
		for _, e := range ents {
			if n := e.Name(); n != "raft" && n != MarkerFile && !strings.HasPrefix(n, MarkerFile) {
				others = append(others, n)
			}
		}
	}
	slices.Sort(others)
	holds := ""
	if len(others) > 0 {
		holds = " The data dir still holds " + strings.Join(others, ", ") + "."
	}
	raftDir := filepath.Join(dataDir, "raft")
	return fmt.Errorf("%w: %s has no raft log, term or snapshot, but %s says node %q was a cluster member here since %s; "+
		"the registry (models, versions, champions, audit log) lived in that raft state, and a new, empty cluster would serve none of it.%s "+
		"Recover: restore %s (the whole directory, log and snapshots) from a backup or another member and start again; "+
		"or, to give that registry up, start once with --force-bootstrap (cluster.Config.ForceBootstrap): a new cluster, seeded again from the --model files only",
		ErrLostRaftState, raftDir, filepath.Join(dataDir, MarkerFile), m.NodeID, m.Since.Format(time.RFC3339), holds, raftDir)
}
