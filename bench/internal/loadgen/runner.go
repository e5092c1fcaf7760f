package loadgen

import (
	"context"
	"fmt"
	"time"
)

// event is a worker's message or its end.
type event struct {
	worker int
	msg    WorkerMsg
	exited bool
	err    error
}

// handle releases a worker into its next phase, or makes it end.
type handle struct {
	release func() error
	abort   func()
}

// runner is the parent's side of a run: the workers' handles and reports, the
// phase being waited for, and the nodes' samples.
type runner struct {
	cfg       Config
	events    chan event
	handles   []handle
	exited    []bool
	running   int
	progress  []Progress
	results   []*WorkerResult
	counts    map[string]int
	lastPhase []string
	label     string    // what the workers are doing, for the progress line
	released  time.Time // when the current phase started
	tick      *time.Ticker
	res       *Result
	node      *nodeSampler
	host      *hostSampler
	metrics   *metricsScraper
	series    *sampler // the nodes through the measured phase (SampleEvery)
	rows      *rowCounter
}

func newRunner(cfg Config) *runner {
	r := &runner{cfg: cfg, events: make(chan event, 64*cfg.Procs), exited: make([]bool, cfg.Procs),
		progress: make([]Progress, cfg.Procs), results: make([]*WorkerResult, cfg.Procs), counts: map[string]int{},
		lastPhase: make([]string, cfg.Procs), label: label(cfg.Scenario, PhaseRegistered), released: time.Now(),
		tick: time.NewTicker(time.Second), res: newResult(cfg), node: newNodeSampler(cfg.NodePIDs),
		host:    &hostSampler{pgPID: cfg.PostgresPID},
		metrics: newMetricsScraper(cfg.MetricsURLs, cfg.MetricsToken), rows: newRowCounter(cfg.DatabaseURL)}
	r.node.sample(&r.node.stats.Start)
	return r
}

// label says what the workers do on the way to phase ph.
func label(scenario, ph string) string {
	switch ph {
	case PhaseRegistered:
		return "registering"
	case PhaseMembers:
		return "adding members"
	case PhaseConnected:
		return "connecting"
	case PhaseDrained:
		if scenario == ScenarioIdle {
			return "idle"
		}
		return "traffic"
	case PhasePosted:
		return "posting"
	case PhaseCaughtUp:
		return "reconnecting"
	}
	return "closing"
}

// measuredStarts scrapes the nodes' metrics and starts sampling them, as the
// workers are about to be released into the measured phase.
func (r *runner) measuredStarts(ctx context.Context) {
	r.host.sample(&r.host.start)
	r.metrics.start(ctx)
	r.series = startSampler(ctx, r.cfg.SampleEvery, r.node, r.metrics)
}

// stop makes every worker still running end, and waits for them.
func (r *runner) stop(cancel context.CancelFunc) {
	cancel()
	r.tick.Stop()
	if r.series != nil {
		r.series.stop(context.Background())
	}
	for i, h := range r.handles {
		if !r.exited[i] && h.abort != nil {
			h.abort()
		}
	}
	for r.running > 0 {
		r.take(<-r.events)
	}
}

func (r *runner) releaseAll() error {
	r.released = time.Now()
	for i, h := range r.handles {
		if err := h.release(); err != nil {
			return fmt.Errorf("loadgen: releasing worker %d: %w", i, err)
		}
	}
	return nil
}

// take books one event, and returns the failure it reports.
func (r *runner) take(ev event) error {
	switch {
	case ev.exited:
		r.running--
		r.exited[ev.worker] = true
		if ev.err != nil {
			return fmt.Errorf("loadgen: worker %d: %w", ev.worker, ev.err)
		}
		if r.lastPhase[ev.worker] != PhaseClosed {
			return fmt.Errorf("loadgen: worker %d ended early, after phase %q", ev.worker, r.lastPhase[ev.worker])
		}
	case ev.msg.Err != "":
		return fmt.Errorf("loadgen: worker %d: %s", ev.worker, ev.msg.Err)
	case ev.msg.Progress != nil:
		r.progress[ev.worker] = *ev.msg.Progress
	case ev.msg.Phase != "":
		r.counts[ev.msg.Phase]++
		r.lastPhase[ev.worker] = ev.msg.Phase
		if ev.msg.Result != nil {
			r.results[ev.worker] = ev.msg.Result
		}
	}
	return nil
}

// waitFor takes events until every worker reported ph, printing progress.
func (r *runner) waitFor(ctx context.Context, ph string) error {
	return r.loop(ctx, nil, func() bool { return r.counts[ph] >= r.cfg.Procs })
}

// waitExit waits for every worker to end after its last phase.
func (r *runner) waitExit(ctx context.Context) error {
	return r.loop(ctx, nil, func() bool { return r.running == 0 })
}

// during runs f while it takes events and prints progress.
func (r *runner) during(ctx context.Context, f func(ctx context.Context)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); f(ctx) }()
	err := r.loop(ctx, done, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	cancel()
	<-done
	return err
}

// loop takes events until done holds (checked after each event, tick or wake),
// printing progress once a second.
func (r *runner) loop(ctx context.Context, wake <-chan struct{}, done func() bool) error {
	for !done() {
		select {
		case ev := <-r.events:
			if err := r.take(ev); err != nil {
				return err
			}
		case <-r.tick.C:
			r.printProgress()
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("loadgen: %s: %w", r.label, ctx.Err())
		}
	}
	return nil
}

// reached notes the time of phase ph, samples the nodes where it matters, and
// (storm) lets the fan-out settle before the reconnect.
func (r *runner) reached(ctx context.Context, ph string) error {
	sec := time.Since(r.released).Seconds()
	r.res.Phases = append(r.res.Phases, PhaseTime{Phase: ph, Sec: sec})
	n := &r.node.stats
	switch ph {
	case PhaseRegistered:
		r.res.RegisterSec = sec
		r.node.sample(&n.Registered)
	case PhaseMembers:
		r.res.MembersSec = sec
		r.node.sample(&n.Registered) // "before connecting"
	case PhaseConnected:
		r.res.SetupSec = sec
		r.node.sample(&n.Connected)
		n.Busy = n.Connected
		if r.rows != nil { // what the setup wrote must be counted before the phase
			r.label = "pg stats"
			if err := r.during(ctx, r.rows.start); err != nil {
				return err
			}
			r.node.sample(&n.Busy)
		}
		if r.cfg.Scenario != ScenarioStorm { // the measured phase comes next
			r.measuredStarts(ctx)
		}
	case PhasePosted:
		r.label = "settling"
		settle := func(ctx context.Context) { r.res.SettleSec = r.node.settle(ctx, r.cfg.Settle).Seconds() }
		if err := r.during(ctx, settle); err != nil {
			return err
		}
		r.node.sample(&n.Busy)
		r.measuredStarts(ctx)
	case PhaseDrained, PhaseCaughtUp:
		r.res.MeasuredSec = sec
		r.node.sample(&n.End)
		r.host.sample(&r.host.end)
		r.metrics.end(ctx)
		r.res.Samples, r.res.SampleWarnings = r.series.stop(ctx)
		r.res.Steady = steadyOf(r.res.Samples, r.cfg.Warmup)
		r.series = nil
		r.printProgress()
		if r.rows != nil {
			r.label = "pg stats"
			if err := r.during(ctx, r.rows.end); err != nil {
				return err
			}
		}
	}
	r.label = label(r.cfg.Scenario, nextPhase(r.cfg.Scenario, ph))
	return nil
}

func nextPhase(scenario, ph string) string {
	phases := Phases(scenario)
	for i, p := range phases[:len(phases)-1] {
		if p == ph {
			return phases[i+1]
		}
	}
	return PhaseClosed
}

func (r *runner) printProgress() {
	if r.cfg.Progress == nil {
		return
	}
	var sum Progress
	h := NewHistogram()
	for _, p := range r.progress {
		sum.ConnsUp += p.ConnsUp
		sum.Sent += p.Sent
		sum.Acked += p.Acked
		sum.Delivered += p.Delivered
		sum.CaughtUp += p.CaughtUp
		sum.Errors += p.Errors
		if p.Delivery != nil {
			h.Merge(histFromJSON(*p.Delivery))
		}
	}
	line := fmt.Sprintf("[%s] %-12s conns up %d/%d  sent %d  acked %d  delivered %d  errors %d",
		time.Since(r.res.Started).Truncate(time.Second), r.label, sum.ConnsUp, r.cfg.Conns, sum.Sent, sum.Acked,
		sum.Delivered, sum.Errors)
	if r.cfg.Scenario == ScenarioStorm {
		line += fmt.Sprintf("  caught up %d", sum.CaughtUp)
	} else {
		line += fmt.Sprintf("  delivery p99 %s", h.Quantile(0.99).Round(10*time.Microsecond))
	}
	fmt.Fprintln(r.cfg.Progress, line)
}
