package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Run runs cfg's scenario against cfg.Target and returns the report. With
// cfg.Progress it writes a progress line every second to progress (which
// may be nil otherwise). Node processes the scenario starts are stopped
// before Run returns. Cancelling ctx ends the run early; the report then
// covers what ran.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nonce := uint32(time.Now().UnixNano()>>10) ^ uint32(time.Now().Nanosecond())
	l, err := newLoader(&cfg, nonce)
	if err != nil {
		return nil, err
	}
	defer l.client.CloseIdleConnections()
	act := newActor(&cfg, l.setDrift, nil)
	defer act.stopNodes(5 * time.Second)
	if err := act.startNodes(); err != nil {
		return nil, err
	}

	var bg sync.WaitGroup
	labelCtx, stopLabels := context.WithCancel(context.Background())
	if l.labels != nil {
		bg.Go(func() { l.labels.run(labelCtx) })
	}
	started := time.Now()
	actCtx, stopActions := context.WithCancel(ctx)
	bg.Go(func() { act.run(actCtx, started) })

	col := &collector{}
	var phaseName atomic.Pointer[string]
	var ticks []Tick
	tickerDone := make(chan struct{})
	stopTicker := make(chan struct{})
	go func() {
		defer close(tickerDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := started
		sample := func(now time.Time, final bool) {
			n, errs, late, p50, p99, vers := col.take()
			if final && (n == 0 || now.Sub(last) < time.Second/2) {
				return // too short a slice to plot: noise
			}
			name := ""
			if p := phaseName.Load(); p != nil {
				name = *p
			}
			tk := Tick{
				T: float64(now.Sub(started).Milliseconds()) / 1000, Phase: name,
				Requests: n, Errors: errs, Late: late, P50: float64(p50), P99: float64(p99), Versions: vers,
			}
			if d := now.Sub(last).Seconds(); d > 0 {
				tk.RPS = float64(int64(float64(n)/d*10)) / 10
			}
			last = now
			ticks = append(ticks, tk)
			if cfg.Progress && progress != nil {
				fmt.Fprintf(progress, "bench %6.1fs  %-12s rps %8.0f  p50 %8s  p99 %8s  errors %d  late %d\n",
					tk.T, name, tk.RPS, fmtUS(tk.P50), fmtUS(tk.P99), errs, late)
			}
		}
		for {
			select {
			case <-stopTicker:
				sample(time.Now(), true)
				return
			case now := <-t.C:
				sample(now, false)
			}
		}
	}()

	rep := &Report{Label: cfg.Label, Started: started.UTC().Round(0), Config: cfg, Machine: ThisMachine()}
	for _, p := range cfg.Scenario.Phases {
		if ctx.Err() != nil {
			break
		}
		name := p.Name
		phaseName.Store(&name)
		offset := time.Since(started)
		st, sent, elapsed := l.runPhase(ctx, p, col)
		rep.Phases = append(rep.Phases, phaseReport(p, offset, st, sent, elapsed))
	}
	rep.Duration = time.Since(started).Seconds()
	close(stopTicker)
	<-tickerDone
	stopActions()
	stopLabels()
	bg.Wait()

	rep.Timeline = ticks
	rep.Actions = act.fired()
	if l.labels != nil {
		rep.Labels = &LabelStats{Sent: l.labels.sent.Load(), Dropped: l.labels.dropped.Load(), Failed: l.labels.failed.Load()}
	}
	rep.notes(time.Duration(cfg.LateThreshold))
	return rep, nil
}

// RunTarget runs cfg against a target that is already started (a node, a
// cluster's load balancer, or a baseline server the caller launched): it is
// Run with cfg.Target and cfg.Label replaced.
func RunTarget(ctx context.Context, cfg Config, label, targetURL string, progress io.Writer) (*Report, error) {
	cfg.Target = targetURL
	if label != "" {
		cfg.Label = label
	}
	return Run(ctx, cfg, progress)
}
