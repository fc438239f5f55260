package drift

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBootstrapProgress: while the reference is being collected its
// progress says how far it is, in words a person reads, and Profile's
// error says the same.
func TestBootstrapProgress(t *testing.T) {
	p := synthReference(t)
	b, err := NewBootstrap(10000, ProfileOptions{Inputs: p.Inputs, Output: "p"})
	if err != nil {
		t.Fatal(err)
	}
	g := newSynth(21)
	row := make([]float32, synthWidth)
	for range 3120 {
		if _, err := b.Observe(row, g.next(row)); err != nil {
			t.Fatal(err)
		}
	}
	pr := b.Progress()
	if pr.Rows != 3120 || pr.Target != 10000 || pr.Done || pr.String() != "3,120 of 10,000 reference rows" {
		t.Errorf("progress %+v (%q), want 3,120 of 10,000 reference rows, not done", pr, pr)
	}
	if _, err := b.Profile(); !errors.Is(err, ErrNotEnoughRows) || !strings.Contains(err.Error(), "3,120 of 10,000 reference rows") {
		t.Errorf("Profile before the sample is full: %v, want ErrNotEnoughRows saying 3,120 of 10,000", err)
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-4500, "-4,500"}} {
		if got := thousands(c.n); got != c.want {
			t.Errorf("thousands(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

// TestBootstrapReservoirSpansPeriod: traffic whose feature follows the
// hour of the day (the value is the hour), 300 rows an hour for a day. The
// first 1,000 rows cover only the first hours (mean hour ≈ 1.7); a 24-hour
// reservoir bootstrap of 1,000 rows covers the day (mean ≈ 11.5, every
// hour present), completes exactly once at the first row after the period,
// and the frozen profile no longer changes with more traffic.
func TestBootstrapReservoirSpansPeriod(t *testing.T) {
	clock := newFakeClock()
	opts := ProfileOptions{Inputs: []Input{{Name: "x", Width: 2}}, Numeric: []string{"x[0]"}}
	first, err := NewBootstrap(1000, opts)
	if err != nil {
		t.Fatal(err)
	}
	day, err := NewBootstrapConfig(BootstrapConfig{Rows: 1000, Period: 24 * time.Hour, Seed: 7, Now: clock.Now, Profile: opts})
	if err != nil {
		t.Fatal(err)
	}
	g := newSynth(22)
	row := make([]float32, 2)
	fulls, fullAt := 0, -1
	for hour := range 25 {
		for i := range 300 {
			row[0] = float32(hour%24) + float32(i)/300
			row[1] = float32(g.rng.NormFloat64())
			if _, err := first.Observe(row, 0.5); err != nil {
				t.Fatal(err)
			}
			full, err := day.Observe(row, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			if full {
				fulls++
				fullAt = hour*300 + i
			}
			if hour < 24 && day.Full() {
				t.Fatalf("hour %d: the day's bootstrap is full before its period ended (%s)", hour, day.Progress())
			}
			clock.Add(12 * time.Second) // 300 rows an hour
		}
	}
	if fulls != 1 || fullAt != 24*300 {
		t.Fatalf("the day's bootstrap completed %d times, at row %d; want once, at row %d (the first after 24h)", fulls, fullAt, 24*300)
	}
	pr := day.Progress()
	if pr.Seen != 24*300+1 || pr.Rows != 1000 || !pr.Done || !strings.Contains(pr.String(), "sampled from 7,201 rows scored so far, until 2026-03-02T12:00:00Z") {
		t.Errorf("progress %+v (%q), want 1,000 rows sampled from 7,201 until the day's end", pr, pr)
	}
	pFirst, err := first.Profile()
	if err != nil {
		t.Fatal(err)
	}
	pDay, err := day.Profile()
	if err != nil {
		t.Fatal(err)
	}
	mFirst, mDay := pFirst.Features[0].Numeric.Mean, pDay.Features[0].Numeric.Mean
	if math.Abs(mFirst-1.67) > 0.1 || math.Abs(mDay-11.5) > 1 {
		t.Errorf("mean hour of the reference: first rows %.2f (want ≈ 1.67), day's reservoir %.2f (want ≈ 11.5)", mFirst, mDay)
	}
	hours := map[int]int{}
	for cell, n := range pDay.Features[0].Numeric.Cells {
		if n > 0 && cell > 0 && cell <= pDay.Features[0].Numeric.Grid.Cells {
			hours[int(pDay.Features[0].Numeric.Grid.Edge(cell))] += int(n)
		}
	}
	if len(hours) < 24 {
		t.Errorf("the day's reference covers %d hours, want all 24: %v", len(hours), hours)
	}
	for range 100 {
		if full, _ := day.Observe(row, 0.5); full {
			t.Fatal("a full bootstrap completed again")
		}
	}
	if again, _ := day.Profile(); again.Fingerprint() != pDay.Fingerprint() || again.Features[0].Numeric.Mean != mDay {
		t.Error("the frozen reference changed with traffic after it was complete")
	}
}

// TestBootstrapReservoirObserveDoesNotAllocate: the reservoir's Observe is
// on the request path while the reference is collected.
func TestBootstrapReservoirObserveDoesNotAllocate(t *testing.T) {
	clock := newFakeClock()
	b, err := NewBootstrapConfig(BootstrapConfig{Rows: 100, Period: time.Hour, Now: clock.Now, Profile: ProfileOptions{Inputs: []Input{{Name: "x", Width: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	row := []float32{1, 2}
	if n := testing.AllocsPerRun(1000, func() { _, _ = b.Observe(row, 0.5) }); n != 0 {
		t.Errorf("reservoir Observe allocates %v times a row", n)
	}
	if _, err := NewBootstrapConfig(BootstrapConfig{Period: -time.Second, Profile: ProfileOptions{Inputs: []Input{{Name: "x", Width: 2}}}}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "period") {
		t.Errorf("negative period: %v, want ErrInvalidConfig naming period", err)
	}
}

// TestBootstrapReservoirConcurrent: goroutines observing at once (as
// request handlers do) complete the sample exactly once, with every row
// seen counted (run it with -race).
func TestBootstrapReservoirConcurrent(t *testing.T) {
	clock := newFakeClock()
	b, err := NewBootstrapConfig(BootstrapConfig{Rows: 200, Period: time.Minute, Now: clock.Now, Profile: ProfileOptions{Inputs: []Input{{Name: "x", Width: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(0)
	var fulls atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := []float32{float32(w), 0}
			for i := range 500 {
				if i == 250 && w == 0 {
					clock.Add(time.Hour)
				}
				row[1] = float32(i)
				if full, _ := b.Observe(row, 0.5); full {
					fulls.Add(1)
				}
				_ = b.Progress()
			}
		}()
	}
	wg.Wait()
	if full, _ := b.Observe([]float32{0, 0}, 0.5); full {
		fulls.Add(1)
	}
	if fulls.Load() != 1 || !b.Full() {
		t.Fatalf("completed %d times (full %v), want once", fulls.Load(), b.Full())
	}
	if _, err := b.Profile(); err != nil {
		t.Fatal(err)
	}
}
