package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/internal/peer"
)

func init() {
	register(command{name: "cluster", summary: "show the cluster's members (status), or remove one (remove ID)", run: runCluster})
}

const clusterUsage = `usage: modelgate cluster status [--admin URL] [--json]
       modelgate cluster remove ID [--admin URL]

status lists the leader and every member: Raft and admin addresses, voter
or non-voter, the log index it has applied and the versions it serves (each
node's own report; "unreachable" when it could not be asked). remove takes
a member out of the Raft configuration (run on any node: it is forwarded to
the leader); stop the removed node afterwards. Nodes join with
modelgate serve --join.

Flags:`

// clusterStatus is GET /api/v1/cluster as the CLI reads it.
type clusterStatus struct {
	Leader  string `json:"leader"`
	Self    string `json:"self"`
	Members []struct {
		ID            string           `json:"id"`
		RaftAddr      string           `json:"raft_addr"`
		AdminAddr     string           `json:"admin_addr"`
		Voter         bool             `json:"voter"`
		AppliedIndex  uint64           `json:"applied_index"`
		ReadyVersions map[string][]int `json:"ready_versions"`
		Ready         bool             `json:"ready"`
		NotReady      string           `json:"not_ready"`
		Unreachable   string           `json:"unreachable"`
	} `json:"members"`
}

func runCluster(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cluster", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, clusterUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs)
	var sub, id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub == "remove" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		var st clusterStatus
		b, err := c.do("GET", "/api/v1/cluster", nil, "", &st)
		if err != nil {
			return err
		}
		if c.json {
			c.printJSON(b)
			return nil
		}
		fmt.Fprintf(stdout, "leader: %s (asked %s)\n", orDash(st.Leader), st.Self)
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tRAFT\tADMIN\tAPPLIED\tSERVES\tSTATE")
		for _, m := range st.Members {
			role := "voter"
			if !m.Voter {
				role = "non-voter"
			}
			if m.ID == st.Leader {
				role = "leader"
			}
			state := "ready"
			switch {
			case m.Unreachable != "":
				state = "unreachable: " + m.Unreachable
			case !m.Ready:
				state = "not ready: " + m.NotReady
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, role, m.RaftAddr, orDash(m.AdminAddr), m.AppliedIndex, servedVersions(m.ReadyVersions), state)
		}
		return tw.Flush()
	case "remove":
		if id == "" {
			return usageError("want a member: modelgate cluster remove ID")
		}
		if _, err := c.do("DELETE", "/api/v1/cluster/members/"+url.PathEscape(id), nil, "", nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from the cluster; stop that node now\n", id)
		return nil
	}
	return usageError("want a subcommand: modelgate cluster status | remove ID")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// servedVersions prints {"fraud": [1, 2]} as fraud@1,2.
func servedVersions(rv map[string][]int) string {
	if len(rv) == 0 {
		return "-"
	}
	names := make([]string, 0, len(rv))
	for m := range rv {
		names = append(names, m)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, m := range names {
		vs := make([]string, len(rv[m]))
		for j, v := range rv[m] {
			vs[j] = strconv.Itoa(v)
		}
		parts[i] = m + "@" + strings.Join(vs, ",")
	}
	return strings.Join(parts, " ")
}

// joinCluster asks the node at admin (host:port or URL; any member: a
// follower forwards it to the leader) to add this node, through peers (so
// with this node's admin TLS, if any), retrying while the cluster cannot
// take it yet (no leader, the node still starting) until ctx ends. A
// refusal (a bad token, a conflicting member) ends it at once.
func joinCluster(ctx context.Context, peers *peer.Client, admin, token, id, raftAddr, adminAddr string, voter bool) error {
	base := peers.URL(admin, "")
	c := &apiClient{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second, Transport: peers.Transport()}}
	body := map[string]any{"id": id, "raft_addr": raftAddr, "admin_addr": adminAddr, "voter": voter}
	for {
		_, err := c.send("POST", "/api/v1/cluster/join", body, nil)
		var ae *apiError
		if err == nil || errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable {
			if err != nil {
				return fmt.Errorf("cannot join the cluster through %s: %w", base, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot join the cluster through %s: %w (gave up: %w)", base, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
