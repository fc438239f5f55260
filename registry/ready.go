package registry

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Artifact distribution. The node that receives an upload stores the bytes
// and registers the version naming itself its first holder; every other
// node fetches the bytes from a holder, verifies them against the digest,
// runs its own validation gate on them and reports the outcome with
// report_ready. A ready node holds the bytes, so it becomes a holder too.
// A node whose gate refused the bytes is recorded in FailedOn with the
// reason, so a refused promotion can say why (see policy_distribution.go).

// NodeReport is one node's word on a version: ready (ReadyOn) or refused
// by its gate (FailedOn, with the reason).
type NodeReport struct {
	Node   string    `json:"node"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason,omitempty"`
}

// ReportReadyArgs records that Node has the bytes of a version, verified
// against Digest, and that its validation gate passed them (Failed empty)
// or refused them (Failed says why). Wire version 4.
type ReportReadyArgs struct {
	Node    string `json:"node"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	// Digest is the digest the node verified; it must be the version's.
	Digest string `json:"digest"`
	// Failed is the gate's reason for refusing the bytes on this node
	// (empty: ready).
	Failed string `json:"failed,omitempty"`
}

// Op implements Args.
func (*ReportReadyArgs) Op() Op { return OpReportReady }

func (a *ReportReadyArgs) validate() error {
	if err := checkNodeID("node", a.Node); err != nil {
		return err
	}
	if err := CheckModelName(a.Model); err != nil {
		return err
	}
	if err := checkVersionNumber(a.Version); err != nil {
		return err
	}
	if !validDigest(a.Digest) {
		return fieldErr("digest", a.Digest, "must be a sha256 digest: 64 lowercase hex characters")
	}
	return checkText("failed", a.Failed, MaxReasonSize, false)
}

func (a *ReportReadyArgs) apply(t *txn) (Result, error) {
	m, i, err := t.version(a.Model, a.Version)
	if err != nil {
		return Result{}, err
	}
	v := &m.Versions[i]
	if a.Digest != v.Digest {
		return Result{}, fieldErr("digest", a.Digest, "is not the digest of "+m.Name+" v"+strconv.Itoa(v.Number)+" ("+v.Digest+"): node "+a.Node+" verified other bytes")
	}
	if v.Stage == StageFailed {
		return Result{}, &TransitionError{Model: m.Name, Version: v.Number, Action: "report ready", From: v.Stage,
			Reason: "it failed validation on the node that registered it; nothing serves it, so no node reports it ready"}
	}
	rep := NodeReport{Node: a.Node, Time: t.now, Reason: a.Failed}
	// The version's slices are shared with the state before this command
	// (cow copies only the Versions array): replace, never modify, them.
	if a.Failed == "" {
		v.ReadyOn = putReport(v.ReadyOn, rep)
		v.FailedOn = dropReport(v.FailedOn, a.Node)
		v.Holders = addHolder(v.Holders, a.Node)
		t.record(AuditRecord{Action: ActionReady, Version: v.Number, Reason: "ready on node " + a.Node,
			Evidence: mustJSON(map[string]string{"node": a.Node, "digest": a.Digest})})
	} else {
		v.FailedOn = putReport(v.FailedOn, rep)
		v.ReadyOn = dropReport(v.ReadyOn, a.Node)
		t.record(AuditRecord{Action: ActionReady, Version: v.Number, Reason: "validation failed on node " + a.Node + ": " + a.Failed,
			Evidence: mustJSON(map[string]string{"node": a.Node, "digest": a.Digest, "failed": a.Failed})})
	}
	return Result{Model: m.Name, Version: v.Number, Stage: v.Stage}, nil
}

// IsReadyOn reports whether node has reported v ready.
func (v *Version) IsReadyOn(node string) bool {
	_, ok := slices.BinarySearchFunc(v.ReadyOn, node, func(r NodeReport, n string) int { return strings.Compare(r.Node, n) })
	return ok
}

// FailedReason returns why node's gate refused v, or "".
func (v *Version) FailedReason(node string) string {
	if i, ok := slices.BinarySearchFunc(v.FailedOn, node, func(r NodeReport, n string) int { return strings.Compare(r.Node, n) }); ok {
		return v.FailedOn[i].Reason
	}
	return ""
}

// putReport returns a new list, sorted by node, with rep in place of the
// node's earlier report.
func putReport(list []NodeReport, rep NodeReport) []NodeReport {
	out := dropReport(list, rep.Node)
	i, _ := slices.BinarySearchFunc(out, rep.Node, func(r NodeReport, n string) int { return strings.Compare(r.Node, n) })
	return slices.Insert(out, i, rep)
}

// dropReport returns a new list without node's report (nil when empty).
func dropReport(list []NodeReport, node string) []NodeReport {
	out := make([]NodeReport, 0, len(list)+1)
	for _, r := range list {
		if r.Node != node {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// addHolder returns a new sorted list of holders with node in it.
func addHolder(holders []string, node string) []string {
	i, ok := slices.BinarySearch(holders, node)
	if ok {
		return holders
	}
	return slices.Insert(slices.Clone(holders), i, node)
}

// checkNodeID checks a node ID: what Raft names a server by.
func checkNodeID(field, id string) error {
	if err := checkText(field, id, maxTextSize, true); err != nil {
		return err
	}
	if strings.ContainsAny(id, " \t\r\n/") {
		return fieldErr(field, id, "must be a node ID (no spaces or slashes)")
	}
	return nil
}

// Pending is a version a node should hold, and where to fetch its bytes.
type Pending struct {
	Model   string
	Version int
	Digest  string
	Size    int64
	// Ready: the node has reported the version ready already; it only
	// needs the bytes again if its store lost them (a node rejoining with
	// a new disk under the same ID).
	Ready bool
	// From are the nodes to fetch from: the holders, then the other ready
	// nodes (the asking node excluded). Empty for a version registered
	// before holders were recorded (wire v3).
	From []string
}

// PendingOn lists the versions node should hold: every version the
// registry may route — validated, shadow, canary, champion, and the warm
// standby — except those node's gate refused, by model, then version. It
// copies only what a fetch needs, so a node can ask at every change.
func (s *State) PendingOn(node string) []Pending {
	var out []Pending
	for _, name := range s.modelNames() {
		m := s.models[name]
		standby := m.standby()
		for i := range m.Versions {
			v := &m.Versions[i]
			switch v.Stage {
			case StageValidated, StageShadow, StageCanary, StageChampion:
			default:
				if v.Number != standby {
					continue
				}
			}
			if v.FailedReason(node) != "" {
				continue
			}
			p := Pending{Model: name, Version: v.Number, Digest: v.Digest, Size: v.Size, Ready: v.IsReadyOn(node)}
			for _, h := range v.Holders {
				if h != node {
					p.From = append(p.From, h)
				}
			}
			for _, r := range v.ReadyOn {
				if r.Node != node && !slices.Contains(p.From, r.Node) {
					p.From = append(p.From, r.Node)
				}
			}
			out = append(out, p)
		}
	}
	return out
}
