package drift

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// fakeClock is a settable clock; tests move it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stateOf reads a sketch's counts.
func stateOf(s *Sketch) state { return s.read() }

func equalCounts(t *testing.T, what string, got, want *Sketch) {
	t.Helper()
	g, w := stateOf(got), stateOf(want)
	if !slices.Equal(g.counts, w.counts) {
		t.Errorf("%s: counts differ (rows %d, want %d)", what, g.counts[0], w.counts[0])
	}
	for i := range g.sums {
		if d := g.sums[i] - w.sums[i]; d > 1e-6 || d < -1e-6 {
			t.Errorf("%s: sum %d is %v, want %v", what, i, g.sums[i], w.sums[i])
		}
	}
}

// windowed feeds n rows per window for each of the given windows, moving
// the fake clock one window after each, and returns the sketch each window
// should hold.
func windowed(t *testing.T, w *Windows, clock *fakeClock, g *fraud.Generator, perWindow []int) []*Sketch {
	t.Helper()
	p := w.Profile()
	row := make([]float32, fraud.NumFeatures)
	var want []*Sketch
	for _, n := range perWindow {
		s, _ := NewSketchShards(p, 1)
		for range n {
			g.Next(row)
			if err := w.Observe(row, score(row)); err != nil {
				t.Fatal(err)
			}
			_ = s.Observe(row, score(row))
		}
		want = append(want, s)
		clock.Add(w.Config().Window)
	}
	return want
}

func sum(t *testing.T, p *Profile, parts ...*Sketch) *Sketch {
	t.Helper()
	s, _ := NewSketchShards(p, 1)
	for _, x := range parts {
		if err := s.Merge(x); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestWindowsRotateAndMerge(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock()
	w, err := NewWindows(p, WindowConfig{Now: clock.Now, Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	g := fraud.NewGenerator(700)
	want := windowed(t, w, clock, g, []int{10, 0, 25, 7, 13})
	// The clock now sits at the start of window 5, which is empty.
	recent := w.Recent(5)
	if len(recent) != 5 {
		t.Fatalf("Recent(5) returned %d windows", len(recent))
	}
	for i := range want {
		equalCounts(t, "window "+string(rune('0'+i)), recent[i], want[i])
	}
	if got := w.Snapshot(0).Rows(); got != 0 {
		t.Errorf("the live window has %d rows, want 0", got)
	}
	// Horizons: the live window plus the windows starting within it.
	equalCounts(t, "2m", w.Snapshot(2*time.Minute), sum(t, p, want[4]))
	equalCounts(t, "3m", w.Snapshot(3*time.Minute), sum(t, p, want[3], want[4]))
	equalCounts(t, "2m30s", w.Snapshot(150*time.Second), sum(t, p, want[3], want[4]))
	equalCounts(t, "1h", w.Snapshot(time.Hour), sum(t, p, want...))
	equalCounts(t, "24h", w.Snapshot(24*time.Hour), sum(t, p, want...))
	// Rows in the live window count in every horizon.
	live := windowed(t, w, clock, g, []int{4})[0]
	clock.Add(-time.Minute) // back into the window just fed, which is still live
	equalCounts(t, "live", w.Snapshot(time.Minute), live)
	equalCounts(t, "1h+live", w.Snapshot(time.Hour), sum(t, p, append(want, live)...))
}

func TestWindowsFallOffTheRing(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock() // 12:00, the start of an hour
	w, err := NewWindows(p, WindowConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	g := fraud.NewGenerator(800)
	first := windowed(t, w, clock, g, []int{50})[0] // 12:00
	clock.Add(59 * time.Minute)                     // 13:00
	second := windowed(t, w, clock, g, []int{30})[0]
	// At 13:01: the last hour (12:02…13:01) no longer has 12:00's window;
	// a longer horizon is served from hourly buckets and still does.
	equalCounts(t, "1h", w.Snapshot(time.Hour), second)
	equalCounts(t, "2h", w.Snapshot(2*time.Hour), sum(t, p, first, second))
	// Skipped windows are empty, whatever their slots held before.
	if r := w.Recent(60); r[0].Rows() != 0 || r[len(r)-1].Rows() != 30 {
		t.Errorf("Recent(60): first %d rows, last %d; want 0 and 30", r[0].Rows(), r[len(r)-1].Rows())
	}
	// 24 hours after 12:00 the 12:00 bucket is still within the rounded
	// horizon; an hour later it has fallen off.
	clock.Add(23*time.Hour - time.Minute) // 12:00 the next day
	equalCounts(t, "24h at +24h", w.Snapshot(24*time.Hour), sum(t, p, first, second))
	clock.Add(time.Hour) // 13:00
	equalCounts(t, "24h at +25h", w.Snapshot(24*time.Hour), second)
	equalCounts(t, "forever at +25h", w.Snapshot(time.Duration(1<<63-1)), second)
	clock.Add(time.Hour)
	equalCounts(t, "24h at +26h", w.Snapshot(24*time.Hour), sum(t, p))
	if n := w.Snapshot(48 * time.Hour).Rows(); n != 0 {
		t.Errorf("beyond retention: %d rows, want 0", n)
	}
	if r := w.Recent(-1); len(r) != 0 {
		t.Errorf("Recent(-1) returned %d windows", len(r))
	}
}

func TestWindowsClockOddities(t *testing.T) {
	p, _, _ := reference(t)
	clock := newFakeClock()
	w, err := NewWindows(p, WindowConfig{Now: clock.Now, Window: 10 * time.Second, Rollup: time.Minute, Retention: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	g := fraud.NewGenerator(900)
	a := windowed(t, w, clock, g, []int{5})[0]
	clock.Add(-time.Hour) // the clock jumps back: rows go to the live window
	b := windowed(t, w, clock, g, []int{6})[0]
	clock.Add(time.Hour)
	// Now 12:00:20: the last 30s are windows 12:00:00 (which took all 11
	// rows), 12:00:10 and the live 12:00:20.
	if got := w.Snapshot(30 * time.Second).Rows(); got != 11 {
		t.Errorf("after the clock went back: %d rows in the last 30s, want 11", got)
	}
	equalCounts(t, "all", w.Snapshot(5*time.Minute), sum(t, p, a, b))
	k, start := w.Current()
	if start.UnixNano() != k*int64(10*time.Second) {
		t.Errorf("window %d starts at %v", k, start)
	}
	// Far past the retention everything is gone.
	clock.Add(7 * 24 * time.Hour)
	w.Rotate()
	if got := w.Snapshot(5 * time.Minute).Rows(); got != 0 {
		t.Errorf("a week later: %d rows, want 0", got)
	}
}

func TestWindowConfigValidate(t *testing.T) {
	f := func(c WindowConfig, field string) {
		t.Helper()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%+v: error %v, want one naming %s", c, err, field)
		}
	}
	f(WindowConfig{Window: time.Microsecond}, "window")
	f(WindowConfig{Window: 7 * time.Second}, "rollup")
	f(WindowConfig{Rollup: 7 * time.Minute}, "retention")
	f(WindowConfig{Shards: -1}, "shards")
	if err := (WindowConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
