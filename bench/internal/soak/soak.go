package soak

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
	"github.com/parleychat/parley/internal/auth"
)

// run is one soak's shared state.
type run struct {
	cfg      *Config
	nodes    *cluster
	signer   *auth.Signer
	http     *http.Client
	progress io.Writer

	mu       sync.Mutex
	users    []*user
	sessions []*session
	slowEnds []SlowEnd

	ctr      *counters
	ack      *loadgen.Histogram // first attempt → sent
	delivery *loadgen.Histogram // first attempt → message frame (slow readers left out)
	online   atomic.Int64

	t0       time.Time
	sendStop chan struct{} // closed when the traffic ends: no new messages
	draining atomic.Bool   // no planned reconnects, no re-homing
	stopAll  chan struct{} // closed when the sessions must close and return
}

// nextNode is the node after node, round robin.
func (r *run) nextNode(node int) int { return (node + 1) % r.cfg.Nodes }

// preferred is node when it is up, else the next one that is.
func (r *run) preferred(node int) int {
	for i := range r.cfg.Nodes {
		if n := (node + i) % r.cfg.Nodes; r.nodes.up(n) {
			return n
		}
	}
	return node
}

// Run runs the soak and returns its result; an error means the run could not
// be carried out (a node would not start, setup failed), not that a check
// failed: Result.Pass says that.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	signer, err := auth.NewSigner([]byte(cfg.TokenSecret), cfg.Timeout+time.Hour)
	if err != nil {
		return nil, err
	}
	nodes, err := newCluster(&cfg)
	if err != nil {
		return nil, err
	}
	defer nodes.closeLogs()
	defer nodes.killEverything()
	r := &run{cfg: &cfg, nodes: nodes, signer: signer, progress: progress, ctr: newCounters(cfg.Nodes),
		ack: loadgen.NewHistogram(), delivery: loadgen.NewHistogram(), sendStop: make(chan struct{}),
		stopAll: make(chan struct{}), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: restPar}}}
	started := time.Now()
	for i := range cfg.Nodes {
		if _, err := nodes.start(ctx, i); err != nil {
			return nil, err
		}
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() { nodes.sampleEvery(sctx, cfg.SampleEvery) })
	defer func() { stopSampling(); sampling.Wait() }()

	r.users = makeUsers(&cfg, randomPrefix())
	r.logf("soak: %d nodes up; registering %d users, creating %d groups", cfg.Nodes, len(r.users), cfg.Groups)
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	if err := r.traffic(ctx); err != nil {
		return nil, err
	}
	return r.finish(ctx, started, stopSampling, &sampling)
}

// slowEnded notes how a slow reader's connection ended.
func (r *run) slowEnded(u *user, node int, err error, life time.Duration, read int64) {
	e := SlowEnd{User: u.name, Quiet: u.quiet, Node: node + 1, AtSec: time.Since(r.t0).Seconds(), Code: closeCode(err),
		LifeSec: life.Seconds(), ReadMiB: float64(read) / (1 << 20)}
	if e.Code == 0 {
		e.Err = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slowEnds = append(r.slowEnds, e)
}

func (r *run) logf(format string, args ...any) { fmt.Fprintf(r.progress, format+"\n", args...) }

// traffic connects every user, runs the load for Duration with the kill
// schedule, then drains the unanswered sends and closes every session.
func (r *run) traffic(ctx context.Context) error {
	var sessions sync.WaitGroup
	for _, u := range r.users {
		s := newSession(r, u)
		r.sessions = append(r.sessions, s)
		sessions.Go(func() { s.run(ctx) })
	}
	defer func() {
		select {
		case <-r.stopAll:
		default:
			close(r.stopAll)
		}
		sessions.Wait()
	}()
	if err := r.waitOnline(ctx, 2*time.Minute); err != nil {
		return err
	}
	r.t0 = time.Now()
	r.logf("soak: %d users online; traffic for %s, a node killed every %s", len(r.users), r.cfg.Duration, r.cfg.KillEvery)
	var gens sync.WaitGroup
	for _, s := range r.sessions {
		if s.u.rate > 0 {
			gens.Go(func() { s.generate(ctx) })
		}
	}
	var chaos sync.WaitGroup
	cctx, stopChaos := context.WithCancel(ctx)
	chaos.Go(func() { r.killSchedule(cctx) })
	chaos.Go(func() { r.supervise(cctx) })
	r.progressUntil(ctx, r.t0.Add(r.cfg.Duration))
	close(r.sendStop)
	r.draining.Store(true)
	gens.Wait()
	stopChaos()
	chaos.Wait()
	r.drain(ctx)
	close(r.stopAll)
	sessions.Wait()
	return ctx.Err()
}

// waitOnline waits until every session's connection is live.
func (r *run) waitOnline(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		live := 0
		for _, s := range r.sessions {
			s.mu.Lock()
			if s.live {
				live++
			}
			s.mu.Unlock()
		}
		if live == len(r.sessions) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("soak: only %d of %d users got online within %s", live, len(r.sessions), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// killSchedule SIGKILLs node 1, 2, 3, 1, … every KillEvery, and starts each again.
func (r *run) killSchedule(ctx context.Context) {
	if r.cfg.KillEvery < 0 {
		return
	}
	for k := 1; ; k++ {
		at := r.t0.Add(time.Duration(k) * r.cfg.KillEvery)
		if !at.Before(r.t0.Add(r.cfg.Duration)) {
			return
		}
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return
		}
		slot := (k - 1) % r.cfg.Nodes
		r.logf("soak: [%s] SIGKILL node %d", r.since(), slot+1)
		if err := r.nodes.killAndRestart(context.WithoutCancel(ctx), slot); err != nil {
			r.nodes.note(slot, "error", 0, "restart failed: %v", err)
			r.logf("soak: node %d: %v", slot+1, err)
			continue
		}
		r.logf("soak: [%s] node %d is back (pid %d)", r.since(), slot+1, r.nodes.current(slot).pid)
	}
}

// supervise starts again a node that exited by itself (a crash: the report
// fails the run), as a supervisor would.
func (r *run) supervise(ctx context.Context) {
	for {
		select {
		case slot := <-r.nodes.unexpected:
			r.logf("soak: [%s] node %d EXITED BY ITSELF; starting it again", r.since(), slot+1)
			select {
			case <-time.After(r.cfg.RestartDelay):
			case <-ctx.Done():
				return
			}
			if err := r.nodes.restart(context.WithoutCancel(ctx), slot, time.Now()); err != nil {
				r.nodes.note(slot, "error", 0, "restart failed: %v", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

func (r *run) since() time.Duration { return time.Since(r.t0).Truncate(time.Second) }

// progressUntil prints a progress line every ProgressEvery until end.
func (r *run) progressUntil(ctx context.Context, end time.Time) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(end)):
			return
		case now := <-t.C:
			acked := r.ctr.acked.Load()
			rate := float64(acked-last) / now.Sub(lastAt).Seconds()
			last, lastAt = acked, now
			r.logf("soak: [%s] acked %d (%.0f/s)  pending %d  online %d/%d  reconnects: planned %d, lost %d  RSS %s",
				r.since(), acked, rate, r.pending(), r.online.Load(), len(r.sessions), r.ctr.planned.Load(),
				r.lostTotal(), r.rssLine())
		}
	}
}

func (r *run) pending() int {
	n := 0
	for _, s := range r.sessions {
		n += s.pendingCount()
	}
	return n
}

func (r *run) lostTotal() int64 {
	closes, _, _ := r.ctr.snapshotMaps()
	var n int64
	for _, v := range closes {
		n += v
	}
	return n
}

// rssLine is each running node's last RSS sample.
func (r *run) rssLine() string {
	r.nodes.mu.Lock()
	defer r.nodes.mu.Unlock()
	out := ""
	for i, p := range r.nodes.cur {
		if i > 0 {
			out += " "
		}
		if p == nil || len(p.samples) == 0 {
			out += fmt.Sprintf("n%d:-", i+1)
			continue
		}
		out += fmt.Sprintf("n%d:%.0fMiB", i+1, float64(p.samples[len(p.samples)-1].RSSKiB)/1024)
	}
	return out
}

// drain waits up to Drain for every send to be answered.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n := r.pending(); n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.logf("soak: %d sends still unanswered after the %s drain", r.pending(), r.cfg.Drain)
}

// finish verifies the queues, stops the nodes and builds the result.
func (r *run) finish(ctx context.Context, started time.Time, stopSampling func(), sampling *sync.WaitGroup) (*Result, error) {
	trafficEnd := time.Now()
	r.logf("soak: traffic over; reading %d queues", len(r.users))
	vstart := time.Now()
	q, problems, err := r.verify(ctx)
	if err != nil {
		return nil, err
	}
	verifySec := time.Since(vstart).Seconds()
	stopSampling()
	sampling.Wait()
	stopProblems := r.nodes.stopAll()
	res := r.result(started, trafficEnd, q, problems, verifySec, stopProblems)
	return res, nil
}
