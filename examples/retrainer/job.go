package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/drift"
	"github.com/modelgate/modelgate/internal/onnxexport"
	"github.com/modelgate/modelgate/internal/train"
	"github.com/modelgate/modelgate/lifecycle"
)

// Job states. A job ends registered, refused (the policy said no: too few
// rows, one class) or failed (something broke: the export, training, the
// registration).
const (
	StateAccepted   = "accepted"
	StatePulling    = "pulling"
	StateTraining   = "training"
	StateRegistered = "registered"
	StateRefused    = "refused"
	StateFailed     = "failed"
)

// JobStatus is what GET /jobs/{id} and /status show of one retraining job.
type JobStatus struct {
	ID            string    `json:"id"`
	Event         string    `json:"event"`
	Model         string    `json:"model"`
	ParentVersion int       `json:"parent_version"`
	State         string    `json:"state"`
	Reason        string    `json:"reason,omitempty"`
	Received      time.Time `json:"received"`
	Finished      time.Time `json:"finished,omitzero"`

	// The data: the export range (since → cursor), the lines read, the
	// rows kept (and why the others were not), their digest.
	Since          string         `json:"since"`
	Cursor         string         `json:"cursor,omitempty"`
	ExportLines    int            `json:"export_lines"`
	ExportCalls    int            `json:"export_calls"`
	ExportAttempts int            `json:"export_attempts"`
	Rows           int            `json:"rows"`
	Skipped        map[string]int `json:"skipped,omitempty"`
	Digest         string         `json:"digest,omitempty"`

	// The candidate.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Version int                `json:"version,omitempty"`
	Stage   string             `json:"stage,omitempty"`
	ONNX    string             `json:"onnx_digest,omitempty"`
}

// done reports whether the job has ended.
func (s *JobStatus) done() bool {
	return s.State == StateRegistered || s.State == StateRefused || s.State == StateFailed
}

// job is one event being handled. Its status is guarded by the receiver's
// mutex; the pipeline itself runs on one goroutine.
type job struct {
	r      *retrainer
	ev     lifecycle.Event
	status JobStatus
	end    chan struct{} // closed when the job has ended
}

// update changes the job's status under the receiver's lock.
func (j *job) update(fn func(*JobStatus)) {
	j.r.mu.Lock()
	fn(&j.status)
	j.r.mu.Unlock()
}

// snapshot copies the status for a reader.
func (j *job) snapshot() JobStatus {
	j.r.mu.Lock()
	defer j.r.mu.Unlock()
	s := j.status
	s.Skipped = maps.Clone(s.Skipped)
	s.Metrics = maps.Clone(s.Metrics)
	return s
}

// refusal is a policy decision not to register: not an error of the job.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

// run is the whole job: pull, train, profile, export, register. It ends
// the job with its outcome, logged and kept for /status.
func (j *job) run(ctx context.Context) {
	log := j.r.log.With("event", j.ev.ID, "model", j.ev.Model, "parent_version", j.ev.Version)
	err := j.pipeline(ctx)
	j.update(func(s *JobStatus) {
		s.Finished = time.Now().UTC()
		var ref *refusal
		switch {
		case err == nil:
			s.State = StateRegistered
		case errors.As(err, &ref):
			s.State, s.Reason = StateRefused, ref.reason
		default:
			s.State, s.Reason = StateFailed, err.Error()
		}
	})
	st := j.snapshot()
	switch st.State {
	case StateRegistered:
		log.Info("candidate registered", "version", st.Version, "stage", st.Stage, "rows", st.Rows,
			"auc", st.Metrics["auc"], "log_loss", st.Metrics["log_loss"], "cursor", st.Cursor, "digest", st.Digest)
	case StateRefused:
		log.Warn("retraining refused: nothing registered", "reason", st.Reason, "rows", st.Rows, "skipped", st.Skipped)
	default:
		log.Error("retraining failed: no validated candidate; fix the cause and re-send the event", "err", st.Reason)
	}
	j.r.finished(j)
}

func (j *job) pipeline(ctx context.Context) error {
	cfg := &j.r.cfg
	link, since, err := j.r.admin.exportURL(j.ev.ExportURL)
	if err != nil {
		return err
	}
	j.update(func(s *JobStatus) { s.State, s.Since = StatePulling, since })
	d := newDataset(cfg.Input, cfg.MaxRows, cfg.Holdout)
	cursor, err := j.pull(ctx, link, since, d)
	j.update(func(s *JobStatus) {
		s.Cursor, s.ExportLines, s.Rows, s.Skipped = cursor, d.lines, d.kept(), maps.Clone(d.skipped)
		if d.kept() > 0 {
			s.Digest = d.digestHex()
		}
	})
	if err != nil {
		return err
	}
	if d.kept() < cfg.MinRows {
		return &refusal{fmt.Sprintf("%d usable labelled rows since the parent version (of %d exported), under the policy's --min-rows %d: "+
			"wait for more labels and re-send the event with a new id, or lower --min-rows", d.kept(), d.lines, cfg.MinRows)}
	}
	tr := train.Data{X: d.train.x, Y: d.train.y, Features: d.features}
	held := train.Data{X: d.held.x, Y: d.held.y, Features: d.features}
	if err := tr.Validate(); err != nil {
		return &refusal{fmt.Sprintf("the %d training rows cannot train a classifier: %v", tr.Rows(), err)}
	}
	if err := held.Validate(); err != nil {
		return &refusal{fmt.Sprintf("the %d held-out rows cannot measure AUC and log-loss: %v (raise --holdout or wait for more labels)", held.Rows(), err)}
	}

	j.update(func(s *JobStatus) { s.State = StateTraining })
	names := cfg.FeatureNames
	if len(names) == 0 {
		names = j.parentNames(ctx, d.features)
	}
	if len(names) != 0 && len(names) != d.features {
		return fmt.Errorf("--feature-names has %d names for %d features", len(names), d.features)
	}
	m, err := train.FitLogistic(tr, cfg.Train)
	if err != nil {
		return fmt.Errorf("cannot train: %w", err)
	}
	scores := train.Scores(m, held)
	metrics := map[string]float64{
		"auc":            train.AUC(scores, held.Y),
		"log_loss":       train.LogLoss(scores, held.Y),
		"train_rows":     float64(tr.Rows()),
		"holdout_rows":   float64(held.Rows()),
		"holdout_share":  cfg.Holdout,
		"positive_rate":  positiveRate(tr.Y, held.Y),
		"holdout_auc_se": aucStdErr(train.AUC(scores, held.Y), held.Y),
	}
	for k, v := range metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("training metric %s is %v: the held-out rows cannot measure it", k, v)
		}
	}
	j.update(func(s *JobStatus) { s.Metrics = maps.Clone(metrics) })

	profile, err := j.profile(m, tr, names)
	if err != nil {
		return err
	}
	onnx, err := onnxexport.Logistic(m, onnxexport.Metadata{
		FeatureNames: names,
		TrainingSeed: cfg.Train.Seed,
		TrainingAUC:  metrics["auc"],
		TrainingRows: tr.Rows(),
		GraphName:    "modelgate_retrained_" + sanitize(j.ev.Model),
		DocString: fmt.Sprintf("%s retrained by examples/retrainer from v%d on %d labelled rows (export cursor %s, %s), for event %s",
			j.ev.Model, j.ev.Version, d.kept(), cursor, d.digestHex(), j.ev.ID),
		Extra: map[string]string{
			"parent_version":   strconv.Itoa(j.ev.Version),
			"dataset_digest":   d.digestHex(),
			"holdout_log_loss": strconv.FormatFloat(metrics["log_loss"], 'f', 6, 64),
		},
	})
	if err != nil {
		return fmt.Errorf("cannot export the model to ONNX: %w", err)
	}
	golden, err := goldenPairs(m, held, cfg.Input, cfg.Output)
	if err != nil {
		return err
	}

	q := link.Query()
	q.Set("since", since)
	uri := *link
	uri.RawQuery = q.Encode()
	skipped := ""
	for _, k := range sortedKeys(d.skipped) {
		skipped += fmt.Sprintf(" %s=%d", k, d.skipped[k])
	}
	reg := registration{
		Lineage: lineage{
			DatasetURI:      uri.String(),
			DatasetVersion:  cursor,
			DatasetDigest:   d.digestHex(),
			CodeRepo:        cfg.Repo,
			CodeCommit:      cfg.Commit,
			TrainingMetrics: metrics,
			ParentVersion:   j.ev.Version,
			Notes: fmt.Sprintf("examples/retrainer, drift event %s: logistic regression (l2 %g, lr %g, %d epochs, batch %d, seed %d) on %d rows, %d held out; export lines %d, skipped:%s",
				j.ev.ID, cfg.Train.L2, cfg.Train.LearningRate, cfg.Train.Epochs, cfg.Train.BatchSize, cfg.Train.Seed,
				tr.Rows(), held.Rows(), d.lines, or(skipped, " none")),
		},
		Profile:        profile,
		Golden:         golden,
		IdempotencyKey: "retrainer/" + j.ev.ID,
		Reason:         fmt.Sprintf("retrained on %d labelled rows after drift event %s (held-out AUC %.4f)", d.kept(), j.ev.ID, metrics["auc"]),
	}
	res, err := j.r.admin.register(ctx, j.ev.Model, onnx, reg)
	if err != nil {
		return fmt.Errorf("cannot register the candidate: %w", err)
	}
	j.update(func(s *JobStatus) { s.Version, s.Stage, s.ONNX = res.Version, res.Stage, res.Digest })
	return nil
}

// parentNames reads the feature names from the parent version's ONNX
// metadata, so the candidate's profile and drift reports name them too.
// Without them the job goes on with unnamed columns: names are a
// convenience, not lineage.
func (j *job) parentNames(ctx context.Context, features int) []string {
	props, err := j.r.admin.parentMetadata(ctx, j.ev.Model, j.ev.Version)
	if err != nil {
		j.r.log.Warn("cannot read the parent version's feature names; the candidate's columns stay unnamed (pass --feature-names)",
			"model", j.ev.Model, "version", j.ev.Version, "err", err)
		return nil
	}
	names := strings.Split(props["feature_names"], ",")
	if props["feature_names"] == "" || len(names) != features {
		return nil
	}
	return names
}

// profile is the candidate's drift reference: its training rows and the
// scores it gives them, so the node judges drift against the data the
// model learnt from rather than bootstrapping from live traffic.
func (j *job) profile(m *train.LogisticRegression, tr train.Data, names []string) (json.RawMessage, error) {
	cfg := &j.r.cfg
	b := drift.NewProfileBuilder(drift.ProfileOptions{
		Inputs:    []drift.Input{{Name: cfg.Input, Width: tr.Features}},
		Names:     names,
		Output:    cfg.Output,
		Threshold: cfg.Threshold,
		Seed:      uint64(cfg.Train.Seed),
	})
	for i := range tr.Rows() {
		row := tr.Row(i)
		if err := b.AddScored(row, m.Predict(row)); err != nil {
			return nil, fmt.Errorf("cannot profile training row %d: %w", i, err)
		}
	}
	p, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("cannot build the reference profile: %w", err)
	}
	return json.Marshal(p)
}

// goldenPairs records a few held-out rows with the Go model's answers, so
// the node's validation gate checks that ONNX Runtime computes what was
// trained and measured here.
func goldenPairs(m *train.LogisticRegression, held train.Data, input, output string) (json.RawMessage, error) {
	n := min(8, held.Rows())
	in := make([]any, 0, n*held.Features)
	out := make([]any, 0, n)
	for i := range n {
		for _, v := range held.Row(i) {
			in = append(in, v)
		}
		out = append(out, m.Predict(held.Row(i)))
	}
	pair := []map[string]any{{
		"inputs":  []map[string]any{{"name": input, "datatype": "FP32", "shape": []int{n, held.Features}, "data": in}},
		"outputs": []map[string]any{{"name": output, "datatype": "FP32", "shape": []int{n, 1}, "data": out}},
	}}
	return json.Marshal(pair)
}

func positiveRate(ys ...[]bool) float64 {
	pos, n := 0, 0
	for _, y := range ys {
		for _, v := range y {
			if v {
				pos++
			}
		}
		n += len(y)
	}
	return float64(pos) / float64(n)
}

// aucStdErr is the Hanley–McNeil standard error of an AUC: with the few
// positives a fraud hold-out has, the AUC alone overstates what is known.
func aucStdErr(auc float64, labels []bool) float64 {
	var np, nn float64
	for _, y := range labels {
		if y {
			np++
		} else {
			nn++
		}
	}
	q1, q2 := auc/(2-auc), 2*auc*auc/(1+auc)
	return math.Sqrt((auc*(1-auc) + (np-1)*(q1-auc*auc) + (nn-1)*(q2-auc*auc)) / (np * nn))
}

// sanitize keeps a model name usable as part of a graph name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
