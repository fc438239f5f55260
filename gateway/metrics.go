package gateway

import (
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

// Metrics is a node's Prometheus metrics. Per-version handles are created
// once, when a version is published, so the scoring path only increments.
type Metrics struct {
	set     *metrics.Set
	catalog *Catalog

	mu       sync.Mutex
	versions map[[2]string]*slotMetrics
	errs     sync.Map // errKey -> *metrics.Counter
	// shadowSeen holds the shadow and evaluation gauges registered (by
	// name), so the sync loop registers each once.
	shadowSeen map[string]bool

	// Panics counts handler panics recovered into a 500.
	Panics *metrics.Counter
}

// DriftAlert counts a drift alert of a model version
// (modelgate_drift_alerts_total): the lifecycle controller records one.
func (m *Metrics) DriftAlert(model string, version int) {
	m.set.GetOrCreateCounter(`modelgate_drift_alerts_total{model="` + escLabel(model) + `",version="` + strconv.Itoa(version) + `"}`).Inc()
}

type slotMetrics struct {
	requests *metrics.Counter
	// failures counts the version's runs that failed on the server's side
	// (the rollout's error-rate trigger); only the failure path touches it.
	failures *metrics.Counter
	latency  *metrics.PrometheusHistogram
	batch    *metrics.PrometheusHistogram
	// perf is the version's windowed latency and score histograms (the
	// rollout triggers' evidence); it outlives a reload of the version.
	perf *versionPerf
}

type errKey struct {
	model string
	code  int
}

// latencyBuckets span 25µs to ~3.3s: a scoring call should sit in the first
// third of them.
var latencyBuckets = metrics.ExponentialBuckets(25e-6, 2, 18)

// batchBuckets are rows per ORT Run.
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// NewMetrics returns an empty metric set.
func NewMetrics() *Metrics {
	m := &Metrics{set: metrics.NewSet(), versions: map[[2]string]*slotMetrics{}}
	m.Panics = m.set.NewCounter("modelgate_http_panics_total")
	return m
}

// WritePrometheus writes every metric in the Prometheus text format,
// including the Go runtime and process metrics.
func (m *Metrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

func (m *Metrics) forVersion(model, version string) *slotMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{model, version}
	if s := m.versions[k]; s != nil {
		return s
	}
	labels := `{model="` + escLabel(model) + `",version="` + escLabel(version) + `"}`
	s := &slotMetrics{
		requests: m.set.NewCounter("modelgate_requests_total" + labels),
		failures: m.set.NewCounter("modelgate_version_failures_total" + labels),
		latency:  m.set.NewPrometheusHistogramExt("modelgate_request_duration_seconds"+labels, latencyBuckets),
		batch:    m.set.NewPrometheusHistogramExt("modelgate_batch_rows"+labels, batchBuckets),
	}
	var window time.Duration
	if m.catalog != nil {
		window = m.catalog.DriftWindow
	}
	s.perf = newVersionPerf(window, nil)
	m.set.NewGauge("modelgate_queue_depth"+labels, func() float64 {
		if slot := m.slot(model, version); slot != nil {
			return float64(slot.Model.QueueDepth())
		}
		return 0
	})
	m.set.NewGauge("modelgate_inflight"+labels, func() float64 {
		if slot := m.slot(model, version); slot != nil {
			return float64(slot.InFlight())
		}
		return 0
	})
	m.versions[k] = s
	return s
}

// requestsOf returns the requests a version answered on this node (0 when
// it never was loaded here).
func (m *Metrics) requestsOf(model, version string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.versions[[2]string{model, version}]; s != nil && s.requests != nil {
		return s.requests.Get()
	}
	return 0
}

// countsOf returns the requests a version answered on this node and its
// server-side failures.
func (m *Metrics) countsOf(model, version string) (requests, failures uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.versions[[2]string{model, version}]; s != nil && s.requests != nil {
		return s.requests.Get(), s.failures.Get()
	}
	return 0, 0
}

// perfOf returns a version's windowed latency and score histograms, or nil
// when it never was loaded here.
func (m *Metrics) perfOf(model, version string) *versionPerf {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.versions[[2]string{model, version}]; s != nil {
		return s.perf
	}
	return nil
}

// slot finds the version's current slot, for the gauges: a version
// replaced or removed reads as 0 rather than keeping a drained slot alive.
func (m *Metrics) slot(model, version string) *runtime.Slot {
	if m.catalog == nil {
		return nil
	}
	if r := m.catalog.table().Model(model); r != nil {
		if v := r.Version(version); v != nil {
			return v.Slot
		}
	}
	return nil
}

// errorCounter counts a failed request by model and status code. Names of
// models this node does not serve are folded into one label value, so a
// client cannot grow the metric set by sending made-up names.
func (m *Metrics) errorCounter(model string, code int) *metrics.Counter {
	k := errKey{model, code}
	if c, ok := m.errs.Load(k); ok {
		return c.(*metrics.Counter)
	}
	c := m.set.GetOrCreateCounter(`modelgate_request_errors_total{model="` + escLabel(model) + `",code="` + strconv.Itoa(code) + `"}`)
	m.errs.Store(k, c)
	return c
}

func escLabel(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// watchPredLog exports the prediction log's counters.
func (m *Metrics) watchPredLog(l *predlog.Log) {
	for _, g := range []struct {
		name string
		f    func(predlog.Stats) uint64
	}{
		{"modelgate_predlog_appended_total", func(s predlog.Stats) uint64 { return s.Appended }},
		{"modelgate_predlog_dropped_total", func(s predlog.Stats) uint64 { return s.Dropped }},
		{"modelgate_predlog_oversize_total", func(s predlog.Stats) uint64 { return s.Oversize }},
		{"modelgate_predlog_committed_total", func(s predlog.Stats) uint64 { return s.Committed }},
		{"modelgate_predlog_commit_errors_total", func(s predlog.Stats) uint64 { return s.CommitErrors }},
		{"modelgate_predlog_syncs_total", func(s predlog.Stats) uint64 { return s.Syncs }},
	} {
		m.set.NewGauge(g.name, func() float64 { return float64(g.f(l.Stats())) })
	}
	// The id index: runs on disk (a lookup reads one chunk of each) and
	// entries held in memory (a lookup scans them; a restart rebuilds them
	// from the records).
	m.set.NewGauge("modelgate_predlog_index_runs", func() float64 { return float64(l.IndexStats().Runs) })
	m.set.NewGauge("modelgate_predlog_index_pending", func() float64 { return float64(l.IndexStats().Pending) })
	m.set.NewGauge("modelgate_predlog_healthy", func() float64 {
		if l.Healthy() != nil {
			return 0
		}
		return 1
	})
}

// driftGauge is one version's drift at scrape time: its labels and the
// view the drift API gives (the controller's judgement).
type driftGauge struct {
	labels string // model="…",version="…"
	v      *DriftView
}

// driftStatuses are the values of modelgate_drift_status's status label.
var driftStatuses = []string{StatusBootstrapping, drift.StatusNoData, drift.StatusNotEnoughData, drift.StatusNoDrift, drift.StatusDrift}

// writeDrift writes every monitored version's drift gauges, judged at
// scrape time exactly as the lifecycle controller judges (drift.Evaluate
// under the model's policy over the same pooled runs), so a dashboard and
// the alerts cannot disagree. One judgement per version and scrape: closed
// runs' reports are cached by the windows, so it costs a merge of the
// newest windows. Families are written together, as Prometheus wants.
func (m *Metrics) writeDrift(w io.Writer) {
	c := m.catalog
	if c == nil {
		return
	}
	var gs []driftGauge
	for _, r := range c.table().Models() {
		for _, ver := range r.Versions() {
			d := ver.Attach.drift.Load()
			if d == nil {
				continue
			}
			v, err := d.view(c.driftPolicy(r.Name), 0, nil)
			if err != nil {
				continue
			}
			gs = append(gs, driftGauge{labels: `model="` + escLabel(r.Name) + `",version="` + escLabel(ver.Slot.Version) + `"`, v: v})
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].labels < gs[j].labels })
	// modelgate_drift_status{status=…} is 1 for the version's status, 0
	// for the others: "no data" and "not enough data" are not "no drift".
	for _, g := range gs {
		for _, st := range driftStatuses {
			v := 0.0
			if g.v.Status == st {
				v = 1
			}
			metrics.WriteGaugeFloat64(w, `modelgate_drift_status{`+g.labels+`,status="`+st+`"}`, v)
		}
	}
	each := func(name string, f func(g driftGauge) (float64, bool)) {
		for _, g := range gs {
			if v, ok := f(g); ok {
				metrics.WriteGaugeFloat64(w, name+`{`+g.labels+`}`, v)
			}
		}
	}
	each("modelgate_drift_bootstrap_rows", func(g driftGauge) (float64, bool) {
		if g.v.Bootstrap == nil {
			return 0, false
		}
		return float64(g.v.Bootstrap.Rows), true
	})
	each("modelgate_drift_bootstrap_target_rows", func(g driftGauge) (float64, bool) {
		if g.v.Bootstrap == nil {
			return 0, false
		}
		return float64(g.v.Bootstrap.Target), true
	})
	judged := func(f func(r *drift.Report) float64) func(g driftGauge) (float64, bool) {
		return func(g driftGauge) (float64, bool) {
			if g.v.Report == nil {
				return 0, false
			}
			return f(g.v.Report), true
		}
	}
	each("modelgate_drift_rows", judged(func(r *drift.Report) float64 { return float64(r.Rows) }))
	each("modelgate_drift_share", judged(func(r *drift.Report) float64 { return r.DriftShare }))
	each("modelgate_drift_drifted_features", judged(func(r *drift.Report) float64 { return float64(r.DriftedFeatures) }))
	each("modelgate_drift_breaches", judged(func(r *drift.Report) float64 {
		n := 0
		for i := range r.Features {
			if r.Features[i].Breach {
				n++
			}
		}
		return float64(n)
	}))
	each("modelgate_drift_alerts_active", func(g driftGauge) (float64, bool) { return float64(len(g.v.Alerts)), true })
	for _, name := range []string{drift.StatPSI, drift.StatJS, drift.StatKS, drift.StatWasserstein} {
		each("modelgate_drift_"+name+"_max", judged(func(r *drift.Report) float64 {
			top := 0.0
			for i := range r.Features {
				if v, ok := r.Features[i].Stat(name); ok && !math.IsNaN(v) {
					top = max(top, v)
				}
			}
			return top
		}))
	}
	each("modelgate_drift_quality_rows_affected", judged(func(r *drift.Report) float64 { return float64(r.Quality.RowsAffected) }))
	each("modelgate_drift_quality_rows_affected_share", judged(func(r *drift.Report) float64 { return r.Quality.Share }))
	// Per feature, only the problems seen: a model of 30 features would
	// otherwise export 90 zeros per version.
	for _, problem := range []string{"missing", "out_of_range", "unseen"} {
		for _, g := range gs {
			if g.v.Report == nil {
				continue
			}
			for i := range g.v.Report.Features {
				f := &g.v.Report.Features[i]
				n := f.Quality.Missing
				switch problem {
				case "out_of_range":
					n = f.Quality.OutOfRange
				case "unseen":
					n = f.Quality.Unseen
				}
				if n == 0 {
					continue
				}
				metrics.WriteGaugeFloat64(w, `modelgate_drift_quality_values{`+g.labels+`,feature="`+escLabel(f.Label())+`",problem="`+problem+`"}`, float64(n))
			}
		}
	}
}

// shadowTop is the horizon the shadow and evaluation gauges summarise.
const shadowTop = time.Hour

// watchShadow exports a model's mirror counters and coverage. The
// counters are the node's since it started (closed mirrors included).
func (m *Metrics) watchShadow(ms *modelShadow) {
	labels := `{model="` + escLabel(ms.name) + `"}`
	for _, g := range []struct {
		name string
		f    func(shadow.MirrorStats) uint64
	}{
		{"modelgate_shadow_served_total", func(s shadow.MirrorStats) uint64 { return s.Served }},
		{"modelgate_shadow_sampled_out_total", func(s shadow.MirrorStats) uint64 { return s.SampledOut }},
		{"modelgate_shadow_mirrored_total", func(s shadow.MirrorStats) uint64 { return s.Mirrored }},
		{"modelgate_shadow_dropped_total", func(s shadow.MirrorStats) uint64 { return s.Dropped }},
		{"modelgate_shadow_runs_total", func(s shadow.MirrorStats) uint64 { return s.Runs }},
		{"modelgate_shadow_errors_total", func(s shadow.MirrorStats) uint64 { return s.Errors }},
	} {
		m.set.GetOrCreateGauge(g.name+labels, func() float64 { return float64(g.f(ms.stats())) })
	}
	m.set.GetOrCreateGauge("modelgate_shadow_coverage"+labels, func() float64 { return ms.stats().Coverage() })
	m.set.GetOrCreateGauge("modelgate_shadow_queued"+labels, func() float64 { return float64(ms.stats().Queued) })
}

// watchShadowPairs registers, once each, the gauges of the model's
// champion/shadow pairs (agreement rate, mean score difference) and of its
// evaluated versions (precision, recall, AUC), all over the last hour and
// computed at scrape time.
func (m *Metrics) watchShadowPairs(ms *modelShadow) {
	var pairs []shadow.Pair
	if c := ms.cmp.Load(); c != nil {
		pairs = c.Pairs()
	}
	var versions []shadow.VersionRole
	if ev := ms.eval.Load(); ev != nil {
		versions = ev.Versions()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shadowSeen == nil {
		m.shadowSeen = map[string]bool{}
	}
	model := escLabel(ms.name)
	for _, p := range pairs {
		labels := `{model="` + model + `",champion="` + strconv.Itoa(p.Champion) + `",shadow="` + strconv.Itoa(p.Shadow) + `"}`
		if m.shadowSeen[labels] {
			continue
		}
		m.shadowSeen[labels] = true
		snap := func() *shadow.Comparison {
			if c := ms.cmp.Load(); c != nil {
				return c.Snapshot(p, shadowTop)
			}
			return nil
		}
		m.set.NewGauge("modelgate_shadow_agreement_rate"+labels, func() float64 {
			if c := snap(); c != nil {
				return c.Agreement.Rate()
			}
			return 0
		})
		m.set.NewGauge("modelgate_shadow_score_diff_mean"+labels, func() float64 {
			if c := snap(); c != nil {
				return finite(c.Diff.Mean())
			}
			return 0
		})
	}
	for _, v := range versions {
		labels := `{model="` + model + `",version="` + strconv.Itoa(v.Version) + `"}`
		if m.shadowSeen["eval"+labels] {
			continue
		}
		m.shadowSeen["eval"+labels] = true
		version := v.Version
		metric := func(f func(shadow.Metrics) float64) func() float64 {
			return func() float64 {
				ev := ms.eval.Load()
				if ev == nil {
					return 0
				}
				mt, err := ev.Snapshot(version, shadowTop).Metrics(0)
				if err != nil {
					return 0
				}
				return finite(f(mt))
			}
		}
		m.set.NewGauge("modelgate_eval_labelled"+labels, metric(func(x shadow.Metrics) float64 { return float64(x.Labelled) }))
		m.set.NewGauge("modelgate_eval_precision"+labels, metric(func(x shadow.Metrics) float64 { return x.Precision }))
		m.set.NewGauge("modelgate_eval_recall"+labels, metric(func(x shadow.Metrics) float64 { return x.Recall }))
		m.set.NewGauge("modelgate_eval_auc"+labels, metric(func(x shadow.Metrics) float64 { return x.AUC }))
	}
}
