package drift

import (
	"sync"
	"time"
)

// StatDriftShare is the Statistic of a model-level alert: the share of
// drifted input features reached the policy's DriftShare in every one of
// the judgements the alert needs.
const StatDriftShare = "drift_share"

// Run is the stretch of traffic one judgement covers: the closed windows
// from From to To (consecutive, newest backwards until they held the
// policy's MinCount rows) and their Report.
type Run struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Windows int       `json:"windows"`
	Report  *Report   `json:"report"`
}

// Evaluation is a judgement of a version's recent traffic under a Policy:
// what the drift API shows and what the alert loop acts on.
type Evaluation struct {
	// Status is the newest run's: StatusDrift or StatusNoDrift when it held
	// MinCount rows; StatusNotEnoughData when even every window within
	// reach did not (Rows says how many there were); StatusNoData when
	// they held none.
	Status string `json:"status"`
	// Rows is the newest run's row count and MinCount what it needed.
	Rows     int64 `json:"rows"`
	MinCount int64 `json:"min_count"`
	// Runs are the judged runs, oldest first and disjoint, the newest ending
	// with the last closed window: as many as the policy's longest
	// ConsecutiveWindows, fewer when the windows within reach run out. With
	// not enough data it is the one partial run, judged as such. Reports
	// of complete runs are shared with later evaluations: read only.
	Runs []Run `json:"runs"`
	// Alerts are the statistics that breached in as many runs in a row as
	// their ConsecutiveWindows, and a StatDriftShare alert when the drift
	// share reached the policy's in each of the longest such streak.
	Alerts []Alert `json:"alerts,omitempty"`
}

// Latest is the newest run's report (nil only without windows).
func (e *Evaluation) Latest() *Report {
	if len(e.Runs) == 0 {
		return nil
	}
	return e.Runs[len(e.Runs)-1].Report
}

// Reports are the runs' reports, oldest first.
func (e *Evaluation) Reports() []*Report {
	out := make([]*Report, len(e.Runs))
	for i := range e.Runs {
		out[i] = e.Runs[i].Report
	}
	return out
}

// Evaluate judges w's closed windows by pol. Windows are pooled newest
// backwards into runs of at least MinCount rows, so low traffic is judged
// over as many windows as it takes rather than never; a run's windows are
// consecutive and runs do not overlap, so "ConsecutiveWindows judgements in
// a row" means that many disjoint stretches of evidence. With traffic of
// MinCount rows a window or more, each run is one window, as before pooling.
// Pooling reaches back at most pol.MaxWindows windows (all the windows kept
// one by one when 0).
func Evaluate(w *Windows, pol Policy) (*Evaluation, error) {
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	pol = pol.withDefaults()
	need, k := pol.minCount(), pol.consecutive()
	runs := w.runs(need, k, pol.MaxWindows)
	ev := &Evaluation{MinCount: need, Status: StatusNoData}
	for _, r := range runs {
		rep := w.judged.get(pol, r.first, r.last)
		if rep == nil {
			rep = compareState(w.prof, w.lay, &r.st, pol)
			w.judged.put(pol, r.first, r.last, rep, r.first-int64(len(w.windows)))
		}
		ev.Runs = append(ev.Runs, Run{From: r.from, To: r.to, Windows: r.windows, Report: rep})
	}
	if len(ev.Runs) == 0 {
		return ev, nil
	}
	last := ev.Latest()
	ev.Status, ev.Rows = last.Status, last.Rows
	if last.Rows < need {
		return ev, nil // a partial run: nothing judged, nothing alerts
	}
	reports := ev.Reports()
	ev.Alerts = Sustained(reports, pol.Thresholds)
	if len(reports) >= k {
		shares := make([]float64, 0, k)
		for _, r := range reports[len(reports)-k:] {
			if !r.DatasetDrift {
				return ev, nil
			}
			shares = append(shares, r.DriftShare)
		}
		ev.Alerts = append(ev.Alerts, Alert{Statistic: StatDriftShare, Threshold: pol.DriftShare, Values: shares})
	}
	return ev, nil
}

// pooled is a run of closed windows merged into one state.
type pooled struct {
	first, last int64 // window numbers
	from, to    time.Time
	windows     int
	st          state
}

// judgedRuns remembers the reports of complete runs. A closed window never
// changes, so the run of windows first…last judged by one policy always
// gives the same report: each window close then costs one comparison (the
// new run) instead of one per run the alert needs. Entries of another
// policy, or older than the oldest run just asked for, are dropped.
type judgedRuns struct {
	mu   sync.Mutex
	pol  Policy
	runs map[[2]int64]*Report
}

func (j *judgedRuns) get(pol Policy, first, last int64) *Report {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pol != pol {
		return nil
	}
	return j.runs[[2]int64{first, last}]
}

// put remembers a complete run's report and forgets the runs that start
// before floor (out of the ring: never asked for again).
func (j *judgedRuns) put(pol Policy, first, last int64, r *Report, floor int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pol != pol || j.runs == nil {
		j.pol, j.runs = pol, map[[2]int64]*Report{}
	}
	if r.Rows < r.MinCount {
		return // a partial run grows as windows close
	}
	for k := range j.runs {
		if k[0] < floor {
			delete(j.runs, k)
		}
	}
	j.runs[[2]int64{first, last}] = r
}

// runs cuts the closed windows, newest backwards, into up to k disjoint runs
// of at least need rows each, reaching back at most reach windows (0: the
// whole ring). It returns them oldest first. When the newest run cannot
// reach need rows it is returned alone, partial (empty windows included,
// so an idle version is a run of zero rows, not no run).
func (w *Windows) runs(need int64, k, reach int) []pooled {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(w.number(w.cfg.Now()))
	ring := int64(len(w.windows))
	if reach <= 0 || int64(reach) > ring {
		reach = int(ring)
	}
	cur := w.cur.Load()
	var out []pooled
	var run *pooled
	var rows int64
	for id := cur - 1; id >= cur-int64(reach) && len(out) < k; id-- {
		if run == nil {
			run = &pooled{last: id, to: time.Unix(0, (id+1)*w.win), st: newState(w.lay)}
			rows = 0
		}
		if f := &w.windows[mod(id, ring)]; f.id == id {
			f.addInto(&run.st)
			rows += int64(f.counts[0])
		}
		run.windows++
		run.first, run.from = id, time.Unix(0, id*w.win)
		if rows >= need {
			out = append(out, *run)
			run = nil
		}
	}
	if len(out) == 0 && run != nil {
		out = append(out, *run)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
