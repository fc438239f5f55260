package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/fraud"
	"github.com/modelgate/modelgate/shadow"
)

// shadowRequests is how many requests the shadow test scores; each is
// logged twice (champion and shadow), so its labels join twice as many
// predictions.
const shadowRequests = 1500

// mirrorBatch keeps every batch well under the mirror's pooled copies
// (shadow.DefaultQueueSize), so no copy is skipped however slowly the niced
// shadow worker runs on a busy machine, and "mirrored == scored" is exact.
const mirrorBatch = shadow.DefaultQueueSize / 4

// waitFor polls check until it reports true; the deadline is one only a
// hang reaches.
func waitFor(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, last := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 2 minutes; last: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(t *testing.T, n *node, path string, v any) []byte {
	t.Helper()
	code, b := n.api(t, "GET", path, nil, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return b
}

// exportRow is the part of a logged row the test reads.
type exportRow struct {
	ID      string   `json:"id"`
	Version string   `json:"version"`
	Role    string   `json:"role"`
	Label   *float64 `json:"label"`
	Outputs []struct {
		Name string    `json:"name"`
		Data []float64 `json:"data"`
	} `json:"outputs"`
}

// exportAll reads every row of the model's export (labelled only or all).
func exportAll(t *testing.T, n *node, labelled bool) []exportRow {
	t.Helper()
	var rows []exportRow
	cursor := ""
	for {
		path := "/api/v1/models/fraud/export?limit=10000&since=" + cursor
		if labelled {
			path += "&labelled=true"
		}
		req, _ := http.NewRequest("GET", "http://"+n.admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+n.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("export: %d %s", resp.StatusCode, body)
		}
		got := 0
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r exportRow
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("export row: %v: %s", err, sc.Bytes())
			}
			rows = append(rows, r)
			got++
		}
		next := resp.Header.Get("Modelgate-Next-Cursor")
		if got == 0 || next == cursor {
			return rows
		}
		cursor = next
	}
}

// direct is the evaluation of rows computed here, from first principles.
type direct struct {
	n                  int
	tp, fp, fn, tn     int
	logLoss, brier     float64
	precision, recall  float64
	f1, accuracy, auc  float64
	positive, negative []float64
}

func computeDirect(scores, labels []float64, threshold float64) direct {
	var d direct
	for i, s := range scores {
		y := labels[i]
		d.n++
		switch {
		case s >= threshold && y == 1:
			d.tp++
		case s >= threshold:
			d.fp++
		case y == 1:
			d.fn++
		default:
			d.tn++
		}
		p := math.Min(math.Max(s, 1e-15), 1-1e-15)
		if y == 1 {
			d.logLoss -= math.Log(p)
			d.positive = append(d.positive, s)
		} else {
			d.logLoss -= math.Log(1 - p)
			d.negative = append(d.negative, s)
		}
		d.brier += (s - y) * (s - y)
	}
	d.logLoss /= float64(d.n)
	d.brier /= float64(d.n)
	d.precision = float64(d.tp) / float64(d.tp+d.fp)
	d.recall = float64(d.tp) / float64(d.tp+d.fn)
	d.f1 = 2 * float64(d.tp) / float64(2*d.tp+d.fp+d.fn)
	d.accuracy = float64(d.tp+d.tn) / float64(d.n)
	// Exact AUC: the share of (positive, negative) pairs ranked right,
	// ties counting one half.
	sort.Float64s(d.negative)
	var wins float64
	for _, p := range d.positive {
		below := sort.SearchFloat64s(d.negative, p)
		ties := sort.SearchFloat64s(d.negative, math.Nextafter(p, 2)) - below
		wins += float64(below) + float64(ties)/2
	}
	d.auc = wins / float64(len(d.positive)*len(d.negative))
	return d
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestShadowMirroringAndExactEvaluation runs a real node (real ONNX
// Runtime, real Pebble log, loopback HTTP): v2 enters shadow; every one of
// the scored requests is mirrored to it, compared with the champion (the
// agreement table counts each once) and logged under the request's id with
// role shadow. Labels then join champion and shadow predictions alike, and
// the evaluation each version reports equals a direct computation on the
// same labelled rows (AUC within 0.005 of the exact pairwise value);
// duplicates, changed labels and unknown ids are counted, not evaluated.
func TestShadowMirroringAndExactEvaluation(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	v1, err := demo.FraudModel(demo.DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := demo.FraudModel(demo.DefaultSeed + 1)
	if err != nil {
		t.Fatal(err)
	}
	p1 := filepath.Join(dir, "fraud.onnx")
	if err := os.WriteFile(p1, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, bin, filepath.Join(dir, "data"), "--model", "fraud="+p1)
	if code, b := n.register(t, "fraud", v2, ""); code != 201 || !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("register v2: %d %s", code, b)
	}
	if code, b := n.api(t, "POST", "/api/v1/models/fraud/versions/2/stage", strings.NewReader(`{"stage":"shadow"}`), "application/json"); code != 200 {
		t.Fatalf("stage v2 shadow: %d %s", code, b)
	}

	var cmp comparisonReport
	getJSON(t, n, "/api/v1/models/fraud/comparison", &cmp)
	if cmp.Champion != 1 || len(cmp.Shadows) != 1 || cmp.Shadows[0].Shadow != 2 || cmp.Shadows[0].Runs != 0 || cmp.Threshold != 0.5 {
		t.Fatalf("before traffic, the comparison should list shadow v2 against v1, empty: %+v", cmp)
	}

	// Score one-row transactions with ids, in batches the mirror always
	// has room for.
	g := fraud.NewGenerator(7)
	row := make([]float32, fraud.NumFeatures)
	truth := make(map[string]float64, shadowRequests)
	ids := make([]string, shadowRequests)
	bodies := make([][]byte, shadowRequests)
	for i := range ids {
		ids[i] = fmt.Sprintf("tx-%05d", i)
		// The label is the generator's own draw for the row: 0 or 1, and
		// related to the features, so the AUC means something.
		fraudulent := g.Next(row)
		bodies[i] = labelledBody(ids[i], row)
		if fraudulent {
			truth[ids[i]] = 1
		} else {
			truth[ids[i]] = 0
		}
	}
	c := &http.Client{Timeout: 30 * time.Second}
	for start := 0; start < shadowRequests; start += mirrorBatch {
		end := min(start+mirrorBatch, shadowRequests)
		var wg sync.WaitGroup
		errs := make(chan string, end-start)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := start + w; i < end; i += 4 {
					resp, err := c.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(bodies[i]))
					if err != nil {
						errs <- err.Error()
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"model_version":"1"`)) {
						errs <- fmt.Sprintf("%s: %d %s", ids[i], resp.StatusCode, b)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("scoring: %s", e)
		}
		waitFor(t, "the mirror catches up", func() (bool, string) {
			var r comparisonReport
			b := getJSON(t, n, "/api/v1/models/fraud/comparison", &r)
			return r.Mirror.Mirrored == uint64(end), string(b)
		})
	}

	b := getJSON(t, n, "/api/v1/models/fraud/comparison?window=1h", &cmp)
	if len(cmp.Shadows) != 1 {
		t.Fatalf("want one pair: %s", b)
	}
	p := cmp.Shadows[0]
	if p.Champion != 1 || p.Shadow != 2 || p.Runs != shadowRequests || p.Errors != 0 || p.Rows != shadowRequests || p.Agreement.Total() != shadowRequests {
		t.Fatalf("pair v1/v2 should hold %d runs and rows, agreement total %d: %s", shadowRequests, p.Agreement.Total(), b)
	}
	if m := cmp.Mirror; m.Served != shadowRequests || m.Dropped != 0 || m.Coverage != 1 {
		t.Fatalf("mirror counters: %+v", m)
	}
	t.Logf("v2 against v1 over %d requests: agreement %.4f, mean diff %+.4f, p99 champion %dµs shadow %dµs",
		p.Runs, p.AgreementRate, p.MeanDiff, p.ChampionP99us, p.ShadowP99us)

	// Every request is logged twice: once by the champion, once by the
	// shadow, under the same id.
	waitFor(t, "every prediction is in the log", func() (bool, string) {
		rows := exportAll(t, n, false)
		return len(rows) == 2*shadowRequests, fmt.Sprintf("%d rows", len(rows))
	})
	var pred struct {
		Prediction exportRow   `json:"prediction"`
		Shadows    []exportRow `json:"shadows"`
	}
	getJSON(t, n, "/api/v1/predictions/"+ids[17], &pred)
	if pred.Prediction.Role != "champion" || pred.Prediction.Version != "1" || len(pred.Shadows) != 1 ||
		pred.Shadows[0].Role != "shadow" || pred.Shadows[0].Version != "2" || pred.Shadows[0].ID != ids[17] {
		t.Fatalf("/predictions/%s should show the champion's record and the shadow's: %+v", ids[17], pred)
	}

	// Labels for most requests, some ids twice within the post (the last
	// wins and the others count as duplicates), and ids never scored.
	const labelledN = 1200
	type labelIn struct {
		ID    string  `json:"id"`
		Label float64 `json:"label"`
	}
	var post []labelIn
	for _, id := range ids[:labelledN] {
		post = append(post, labelIn{id, truth[id]})
	}
	post = append(post, labelIn{ids[0], truth[ids[0]]}, labelIn{ids[1], truth[ids[1]]})
	for i := 0; i < 5; i++ {
		post = append(post, labelIn{fmt.Sprintf("never-scored-%d", i), 1})
	}
	body, _ := json.Marshal(post)
	code, resb := n.api(t, "POST", "/api/v1/models/fraud/labels", bytes.NewReader(body), "application/json")
	var res struct {
		Received, Stored, Evaluated, Unknown, Duplicates, Changed, Unscored, Late, Refused int
	}
	if code != 200 || json.Unmarshal(resb, &res) != nil {
		t.Fatalf("labels: %d %s", code, resb)
	}
	if res.Received != labelledN+7 || res.Stored != labelledN+5 || res.Evaluated != 2*labelledN || res.Unknown != 5 ||
		res.Duplicates != 2 || res.Changed != 0 || res.Unscored != 0 || res.Late != 0 || res.Refused != 0 {
		t.Fatalf("labels: %s", resb)
	}
	// The same labels again change nothing; a changed label replaces the
	// stored one but is not evaluated twice.
	again := append([]labelIn{}, post[:100]...)
	again = append(again, labelIn{ids[500], 1 - truth[ids[500]]})
	body, _ = json.Marshal(again)
	code, resb = n.api(t, "POST", "/api/v1/models/fraud/labels", bytes.NewReader(body), "application/json")
	if code != 200 || json.Unmarshal(resb, &res) != nil {
		t.Fatalf("labels again: %d %s", code, resb)
	}
	if res.Stored != 1 || res.Evaluated != 0 || res.Duplicates != 100 || res.Changed != 1 || res.Unknown != 0 {
		t.Fatalf("labels again: %s", resb)
	}

	var ev evaluationReport
	b = getJSON(t, n, "/api/v1/models/fraud/evaluation?window=1h", &ev)
	if ev.Model != "fraud" || ev.Window != "1h0m0s" || ev.Threshold != 0.5 || ev.Task != "binary" || len(ev.Versions) != 2 {
		t.Fatalf("evaluation: %s", b)
	}

	// The direct computation, on the same rows: the scores as logged, the
	// labels as first posted (the evaluation keeps the first value).
	scores := map[string][2][]float64{} // version -> scores, labels
	for _, r := range exportAll(t, n, true) {
		if len(r.Outputs) != 1 || len(r.Outputs[0].Data) != 1 {
			t.Fatalf("row %s: want one score: %+v", r.ID, r)
		}
		sl := scores[r.Version]
		// The log holds FP32 scores and prints their shortest decimal:
		// back through float32 is the exact value the node evaluated.
		sl[0] = append(sl[0], float64(float32(r.Outputs[0].Data[0])))
		sl[1] = append(sl[1], truth[r.ID])
		scores[r.Version] = sl
	}
	for _, v := range ev.Versions {
		role := map[int]string{1: "champion", 2: "shadow"}[v.Version]
		if v.Role != role || v.Predictions != shadowRequests || v.Labelled != labelledN {
			t.Fatalf("v%d: role %q, %d predictions, %d labelled; want %q, %d, %d", v.Version, v.Role, v.Predictions, v.Labelled, role, shadowRequests, labelledN)
		}
		sl := scores[strconv.Itoa(v.Version)]
		if len(sl[0]) != labelledN {
			t.Fatalf("v%d: %d labelled rows exported", v.Version, len(sl[0]))
		}
		d := computeDirect(sl[0], sl[1], 0.5)
		if v.TP != uint64(d.tp) || v.FP != uint64(d.fp) || v.FN != uint64(d.fn) || v.TN != uint64(d.tn) {
			t.Fatalf("v%d confusion: got tp %d fp %d fn %d tn %d, direct %d %d %d %d", v.Version, v.TP, v.FP, v.FN, v.TN, d.tp, d.fp, d.fn, d.tn)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"precision", v.Precision, d.precision}, {"recall", v.Recall, d.recall}, {"f1", v.F1, d.f1},
			{"accuracy", v.Accuracy, d.accuracy}, {"log_loss", v.LogLoss, d.logLoss}, {"brier", v.Brier, d.brier}} {
			if !near(c.got, c.want) {
				t.Fatalf("v%d %s: evaluation says %v, direct computation %v", v.Version, c.name, c.got, c.want)
			}
		}
		if math.Abs(v.AUC-d.auc) > 0.005 {
			t.Fatalf("v%d auc: evaluation says %v, exact %v", v.Version, v.AUC, d.auc)
		}
		if !(v.PrecisionCI.Low <= v.Precision && v.Precision <= v.PrecisionCI.High && v.AUCCI.Low <= v.AUC && v.AUC <= v.AUCCI.High) {
			t.Fatalf("v%d: intervals do not hold their estimates: %+v", v.Version, v.Metrics)
		}
		t.Logf("v%d (%s): %d labelled, precision %.4f recall %.4f f1 %.4f auc %.4f (exact %.4f) log-loss %.4f",
			v.Version, v.Role, v.Labelled, v.Precision, v.Recall, v.F1, v.AUC, d.auc, v.LogLoss)
	}

	// The CLI prints both reports as tables.
	out, _, err := runCmd(t, "compare", "fraud", "--admin", n.admin, "--token", n.token)
	if err != nil || !strings.Contains(out, "coverage 100.0%") || !regexpLine(out, `^v2\s+v1\s+`+strconv.Itoa(shadowRequests)+`\s+0\s+`) {
		t.Fatalf("modelgate compare: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "eval", "fraud", "--window", "2h", "--admin", n.admin, "--token", n.token)
	if err != nil || !regexpLine(out, `^v1\s+champion\s+`+strconv.Itoa(shadowRequests)+`\s+`+strconv.Itoa(labelledN)+`\s+`) ||
		!regexpLine(out, `^v2\s+shadow\s+`+strconv.Itoa(shadowRequests)+`\s+`+strconv.Itoa(labelledN)+`\s+`) {
		t.Fatalf("modelgate eval: %v\n%s", err, out)
	}
	t.Logf("modelgate eval:\n%s", out)

	// The headline numbers are Prometheus gauges.
	resp, err := http.Get("http://" + n.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`modelgate_shadow_coverage{model="fraud"} 1`,
		`modelgate_shadow_mirrored_total{model="fraud"} ` + strconv.Itoa(shadowRequests),
		`modelgate_shadow_dropped_total{model="fraud"} 0`,
		`modelgate_shadow_agreement_rate{model="fraud",champion="1",shadow="2"} `,
		`modelgate_eval_labelled{model="fraud",version="2"} ` + strconv.Itoa(labelledN),
		`modelgate_eval_auc{model="fraud",version="1"} `,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			waitFor(t, "the metric "+want, func() (bool, string) {
				resp, err := http.Get("http://" + n.admin + "/metrics")
				if err != nil {
					return false, err.Error()
				}
				defer resp.Body.Close()
				metrics, _ = io.ReadAll(resp.Body)
				return bytes.Contains(metrics, []byte(want)), grepLines(string(metrics), "shadow")
			})
		}
	}

	// The policy's sample rate applies at once to every answer after the
	// node has seen it: at 0, answers are offered and sampled out, none is
	// mirrored.
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(`{"serving":{"shadow_sample_rate":0}}`), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	scoreOne := func(id string) {
		t.Helper()
		resp, err := c.Post("http://"+n.addr+"/v2/models/fraud/infer", "application/json", bytes.NewReader(labelledBody(id, row)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", id, resp.StatusCode)
		}
	}
	probe := 0
	waitFor(t, "the sample rate 0 is in force", func() (bool, string) {
		probe++
		scoreOne(fmt.Sprintf("rate-probe-%d", probe))
		var r comparisonReport
		b := getJSON(t, n, "/api/v1/models/fraud/comparison", &r)
		return r.Mirror.SampledOut > 0, string(b)
	})
	var before, after comparisonReport
	getJSON(t, n, "/api/v1/models/fraud/comparison", &before)
	for i := 0; i < 20; i++ {
		scoreOne(fmt.Sprintf("sampled-out-%d", i))
	}
	getJSON(t, n, "/api/v1/models/fraud/comparison", &after)
	if after.Mirror.Served-before.Mirror.Served != 20 || after.Mirror.SampledOut-before.Mirror.SampledOut != 20 || after.Mirror.Enqueued != before.Mirror.Enqueued {
		t.Fatalf("at rate 0: before %+v, after %+v", before.Mirror, after.Mirror)
	}

	// A new threshold starts fresh statistics: windows counted at another
	// threshold do not merge.
	if code, b := n.api(t, "PUT", "/api/v1/models/fraud/policy", strings.NewReader(`{"evaluation":{"threshold":0.3}}`), "application/json"); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	waitFor(t, "the new threshold is in force", func() (bool, string) {
		var e evaluationReport
		b := getJSON(t, n, "/api/v1/models/fraud/evaluation", &e)
		var r comparisonReport
		getJSON(t, n, "/api/v1/models/fraud/comparison", &r)
		return e.Threshold == 0.3 && r.Threshold == 0.3 && len(e.Versions) == 2 && e.Versions[0].Labelled == 0 && e.Versions[1].Labelled == 0, string(b)
	})
}

// regexpLine reports whether a line of out matches expr.
func regexpLine(out, expr string) bool {
	return regexp.MustCompile("(?m)" + expr).MatchString(out)
}

// labelledBody is a one-row OIP request of the transaction row, with id.
func labelledBody(id string, row []float32) []byte {
	b := []byte(`{"id":"` + id + `","inputs":[{"name":"features","datatype":"FP32","shape":[1,30],"data":[`)
	for i, v := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	}
	return append(b, "]}]}"...)
}
