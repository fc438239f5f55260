package shadow

import (
	"errors"
	"testing"
	"time"
)

// TestClockSteppingBackNeverMixesWindows steps the clock back (an NTP
// correction) onto a slot that already holds a newer window: the older
// sample is refused as late rather than counted in the newer window.
func TestClockSteppingBackNeverMixesWindows(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0).Truncate(time.Minute)}
	ev, err := NewEvaluator(EvalConfig{Windows: WindowConfig{Window: time.Minute, Windows: 3, Now: clock.now}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.t
	k0 := ev.WindowOf(t0)
	clock.advance(5 * time.Minute)
	if err := ev.Add(Labelled{Time: clock.t, Version: 1, Score: 0.9, Label: 1}); err != nil {
		t.Fatal(err)
	}
	clock.t = t0.Add(2 * time.Minute) // minute 2 shares minute 5's slot in a 3-window ring
	if err := ev.Add(Labelled{Time: clock.t, Version: 1, Score: 0.1, Label: 0}); !errors.Is(err, ErrOutOfRange) || ev.Late() != 1 {
		t.Fatalf("a sample for minute 2 with minute 5 in its slot: %v, late %d; want ErrOutOfRange and 1", err, ev.Late())
	}
	clock.advance(3 * time.Minute)
	if e := ev.Window(1, k0+5); e == nil || e.N != 1 || e.TP != 1 {
		t.Fatalf("minute 5's window: %+v, want its one true positive alone", e)
	}
}

// TestHorizons checks which windows a horizon covers: at most one window
// is the live one alone, and anything past the ring is the whole ring.
func TestHorizons(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0).Truncate(time.Minute)}
	r := newRing(WindowConfig{Window: time.Minute, Windows: 4, Now: clock.now}, func() *int { return new(int) }, func(p *int) { *p = 0 })
	for i := range 4 {
		*r.at(clock.t) = i + 1
		if i < 3 {
			clock.advance(time.Minute)
		}
	}
	sum := func(h time.Duration) int {
		s := 0
		r.each(h, func(_ int64, v *int) { s += *v })
		return s
	}
	for _, c := range []struct {
		h    time.Duration
		want int
	}{{0, 4}, {-time.Hour, 4}, {time.Minute, 4}, {61 * time.Second, 7}, {3 * time.Minute, 9}, {time.Duration(1 << 62), 10}} {
		if got := sum(c.h); got != c.want {
			t.Errorf("horizon %v covers %d, want %d", c.h, got, c.want)
		}
	}
}
