package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/registry"
)

// AuditArchive reads the audit records that retention (registry
// trim_audit) removed from the replicated registry and this node archived
// before applying the trim. Audit selects as registry.State.Audit does.
type AuditArchive interface {
	Audit(f registry.AuditFilter) ([]registry.AuditRecord, error)
}

// auditPage returns the records f selects: from this node's archive for
// seqs the registry no longer holds, then from the registry, as one page
// in seq order. It answers the request itself (and returns ok false) when
// it cannot.
//
// The registry is read first: a node archives what a trim removes before
// applying it, so every record older than the registry's first retained
// one at that moment is already in the archive when it is read next.
func (s *Server) auditPage(ctx *fasthttp.RequestCtx, f registry.AuditFilter) (recs []registry.AuditRecord, archived int, first uint64, ok bool) {
	var held []registry.AuditRecord
	if !s.view(ctx, func(st *registry.State) {
		first = st.FirstRetainedSeq()
		held = st.Audit(f)
	}) {
		return nil, 0, 0, false
	}
	if a := s.cfg.AuditArchive; a != nil && f.Since+1 < first {
		af := f
		af.Until = first - 1
		var err error
		if recs, err = a.Audit(af); err != nil {
			writeError(ctx, fasthttp.StatusInternalServerError, "cannot read this node's audit archive: "+err.Error())
			return nil, 0, 0, false
		}
		archived = len(recs)
	}
	recs = append(recs, held...)
	if f.Limit > 0 && len(recs) > f.Limit {
		recs = recs[:f.Limit]
	}
	return recs, archived, first, true
}
