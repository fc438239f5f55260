package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency summarises a histogram; every value is in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Mean:  float64(int64(h.Mean()*10)) / 10,
		P50:   float64(h.ValueAtPercentile(50)),
		P90:   float64(h.ValueAtPercentile(90)),
		P99:   float64(h.ValueAtPercentile(99)),
		P999:  float64(h.ValueAtPercentile(99.9)),
		Max:   float64(h.Max()),
	}
}

// Point is one point of a latency distribution: the latency (µs) at a
// percentile.
type Point struct {
	Percentile float64 `json:"percentile"`
	US         float64 `json:"us"`
}

// curvePercentiles are the points of the percentile curve in the report.
var curvePercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 99, 99.5, 99.7, 99.9, 99.95, 99.97, 99.99, 99.995, 99.999, 100}

func curve(h *hdr.Histogram) []Point {
	if h.TotalCount() == 0 {
		return nil
	}
	pts := make([]Point, len(curvePercentiles))
	for i, p := range curvePercentiles {
		v := h.ValueAtPercentile(p)
		if p == 100 {
			v = h.Max()
		}
		pts[i] = Point{p, float64(v)}
	}
	return pts
}

// PhaseReport is what one phase measured. Latencies count every answered
// request (any HTTP status), from its intended send time in open loop;
// Versions count the 2xx answers by the model_version that answered.
type PhaseReport struct {
	Name        string  `json:"name"`
	Mode        string  `json:"mode"` // "open" or "closed"
	Start       float64 `json:"start_s"`
	Duration    float64 `json:"duration_s"`
	TargetRate  float64 `json:"target_rps"`
	Poisson     bool    `json:"poisson"`
	Connections int     `json:"connections"`
	Drift       bool    `json:"drift"`

	Sent         int64            `json:"sent"`
	Answered     int64            `json:"answered"`
	OK           int64            `json:"ok"`
	Errors       map[string]int64 `json:"errors"`
	AchievedRate float64          `json:"achieved_rps"`
	// LateSends counts open-loop sends that started more than
	// Config.LateThreshold after their intended time.
	LateSends    int64              `json:"late_sends"`
	MaxLateMS    float64            `json:"max_late_ms"`
	Latency      Latency            `json:"latency"`
	Versions     map[string]Latency `json:"versions"`
	Distribution []Point            `json:"distribution"`
	VersionCurve map[string][]Point `json:"version_distribution"`
}

// Tick is one second (or so) of the run, as the progress line and the
// plots show it.
type Tick struct {
	T        float64          `json:"t_s"`
	Phase    string           `json:"phase"`
	Requests int64            `json:"requests"`
	RPS      float64          `json:"rps"`
	Errors   int64            `json:"errors"`
	Late     int64            `json:"late"`
	P50      float64          `json:"p50_us"`
	P99      float64          `json:"p99_us"`
	Versions map[string]int64 `json:"versions"`
}

// Machine describes where the harness ran.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Hostname  string `json:"hostname"`
}

// ThisMachine describes the machine the harness runs on (the CPU model from
// /proc/cpuinfo where there is one).
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	m.Hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// LabelStats counts the delayed labels of a run.
type LabelStats struct {
	Sent    int64 `json:"sent"`
	Dropped int64 `json:"dropped"`
	Failed  int64 `json:"failed"`
}

// Report is everything a run measured, with its configuration and the
// machine.
type Report struct {
	Label    string         `json:"label"`
	Started  time.Time      `json:"started"`
	Duration float64        `json:"duration_s"`
	Config   Config         `json:"config"`
	Machine  Machine        `json:"machine"`
	Phases   []PhaseReport  `json:"phases"`
	Timeline []Tick         `json:"timeline"`
	Actions  []ActionResult `json:"actions"`
	Labels   *LabelStats    `json:"labels,omitempty"`
	// Notes are warnings a reader must see: late sends, errors, failed
	// actions.
	Notes []string `json:"notes"`
}

// phaseReport builds a phase's report from its merged measurements.
func phaseReport(p Phase, start time.Duration, st *phaseStats, sent int64, elapsed time.Duration) PhaseReport {
	r := PhaseReport{
		Name:         p.Name,
		Mode:         "closed",
		Start:        start.Seconds(),
		Duration:     elapsed.Seconds(),
		TargetRate:   p.Rate,
		Poisson:      p.Poisson,
		Connections:  p.concurrency(),
		Drift:        p.Drift,
		Sent:         sent,
		Answered:     st.answered,
		OK:           st.ok,
		Errors:       st.errs,
		LateSends:    st.late,
		MaxLateMS:    float64(st.maxLate.Microseconds()) / 1000,
		Latency:      summarize(st.all),
		Versions:     map[string]Latency{},
		Distribution: curve(st.all),
		VersionCurve: map[string][]Point{},
	}
	if p.open() {
		r.Mode = "open"
	} else {
		r.LateSends, r.MaxLateMS = 0, 0 // closed loop sends when it can, by definition
	}
	if elapsed > 0 {
		r.AchievedRate = float64(int64(float64(st.answered)/elapsed.Seconds()*10)) / 10
	}
	for v, h := range st.versions {
		r.Versions[v] = summarize(h)
		r.VersionCurve[v] = curve(h)
	}
	return r
}

// notes lists what a reader of the report must not miss.
func (r *Report) notes(lateThreshold time.Duration) {
	for _, p := range r.Phases {
		if p.LateSends > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("phase %s: %d of %d sends started more than %s late (worst %.1f ms): the harness, its timers or its %d connections could not keep %.0f rps (sends delayed by busy connections count their latency from the intended time)",
				p.Name, p.LateSends, p.Sent, lateThreshold, p.MaxLateMS, p.Connections, p.TargetRate))
		}
		if p.Mode == "open" && p.TargetRate > 0 && p.AchievedRate < 0.95*p.TargetRate {
			r.Notes = append(r.Notes, fmt.Sprintf("phase %s: achieved %.0f rps of the %.0f rps target", p.Name, p.AchievedRate, p.TargetRate))
		}
		var errs int64
		for _, n := range p.Errors {
			errs += n
		}
		if errs > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("phase %s: %d errors %v", p.Name, errs, p.Errors))
		}
	}
	for _, a := range r.Actions {
		if a.Error != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("action %s at %.1fs failed: %s", a.Do, a.At, a.Error))
		}
	}
	if r.Labels != nil && (r.Labels.Dropped > 0 || r.Labels.Failed > 0) {
		r.Notes = append(r.Notes, fmt.Sprintf("labels: %d dropped (queue full), %d failed to send", r.Labels.Dropped, r.Labels.Failed))
	}
}

// fmtUS formats microseconds for people ("850µs", "1.25ms", "2.1s").
func fmtUS(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

// WriteText writes the report as a table: one line per phase, then one
// per phase and answering version, then the actions and the notes.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "PHASE\tMODE\tTARGET\tACHIEVED\tSENT\tOK\tERRORS\tLATE\tP50\tP90\tP99\tP99.9\tMAX\t\n")
	for _, p := range r.Phases {
		var errs int64
		for _, n := range p.Errors {
			errs += n
		}
		target := fmt.Sprintf("%d conns", p.Connections)
		if p.Mode == "open" {
			target = fmt.Sprintf("%.0f/s", p.TargetRate)
		}
		l := p.Latency
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f/s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, p.Mode, target, p.AchievedRate,
			p.Sent, p.OK, errs, p.LateSends, fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max))
	}
	fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\t\t\t\t\t\n")
	fmt.Fprintf(tw, "PHASE\tVERSION\t\t\t\tOK\t\t\tP50\tP90\tP99\tP99.9\tMAX\t\n")
	for _, p := range r.Phases {
		vs := make([]string, 0, len(p.Versions))
		for v := range p.Versions {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			l := p.Versions[v]
			name := v
			if name == "" {
				name = "(none)"
			}
			fmt.Fprintf(tw, "%s\t%s\t\t\t\t%d\t\t\t%s\t%s\t%s\t%s\t%s\t\n", p.Name, name, l.Count, fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range r.Actions {
		status := "ok"
		if a.Error != "" {
			status = "FAILED: " + a.Error
		}
		fmt.Fprintf(w, "action @%.1fs (fired %.2fs, %.0f ms) %s: %s\n", a.At, a.Fired, a.Took, a.Detail, status)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// WriteFiles writes dir/report.json and dir/report.html (creating dir).
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: cannot write the report: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: cannot encode the report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: cannot write the report: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return fmt.Errorf("bench: cannot write the report: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := r.WriteHTML(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: cannot write the report: %w", err)
	}
	return f.Close()
}

// ReadReport reads a report.json.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cannot read the report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: cannot decode the report %s: %w", path, err)
	}
	return &r, nil
}
