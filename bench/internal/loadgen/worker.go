package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/wire"
)

// WorkerConfig is the share of one process: its clients, users and rate.
type WorkerConfig struct {
	Worker      int      `json:"worker"`
	URLs        []string `json:"urls"`
	Scenario    string   `json:"scenario"`
	Conns       int      `json:"conns"`    // clients of this worker
	Members     int      `json:"members"`  // group size (group, storm)
	Senders     int      `json:"senders"`  // senders per group (group)
	Messages    int      `json:"messages"` // messages each storm client misses
	UsersPrefix string   `json:"usersPrefix"`
	RunID       string   `json:"runId"` // part of every client message id, so that runs never dedupe each other
	Rate        float64  `json:"rate"`  // msgs/s of this worker; 0 = as fast as the window allows
	Window      int      `json:"window"`
	Duration    Dur      `json:"duration"`
	Drain       Dur      `json:"drain"`
	SrcIPs      int      `json:"srcIps"`
	SrcOffset   int      `json:"srcOffset"`
	Encoding    string   `json:"encoding"`
	RegisterPar int      `json:"registerPar"`
	DialPar     int      `json:"dialPar"`
	// ReadEvery, when positive, makes each recipient acknowledge every message it
	// gets with received, and every ReadEvery-th with read too (dm only).
	ReadEvery int `json:"readEvery,omitempty"`
	// Push and PushOffline: see Config.
	Push        string `json:"push,omitempty"`
	PushOffline bool   `json:"pushOffline,omitempty"`
	// TokenSecret, when set, is the nodes' token secret: tokens are minted here
	// instead of logging in.
	TokenSecret string `json:"tokenSecret,omitempty"`
	// Channel: this worker's members that stay offline (Conns are online), the
	// channel's name, mode and owner (worker 0's last user), and, for worker 0,
	// every worker's members (online and offline), whom it adds to the channel.
	Offline      int    `json:"offline,omitempty"`
	ChannelName  string `json:"channelName,omitempty"`
	ChannelMode  string `json:"channelMode,omitempty"`
	Owner        string `json:"owner,omitempty"`
	ChannelUsers []int  `json:"channelUsers,omitempty"`
}

// Dur is a time.Duration that reads and writes JSON as a Go duration string.
type Dur time.Duration

func (d Dur) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

func (d *Dur) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Dur(v)
	return err
}

// Phases a worker reports; after each but the last it waits to be released.
const (
	PhaseRegistered = "registered" // users registered or tokens minted, groups created
	PhaseMembers    = "members"    // channel: the channel made and every member added
	PhaseConnected  = "connected"  // sockets open and synced
	PhaseDrained    = "drained"    // traffic (or holding) done and drained; Result set
	PhaseOffline    = "offline"    // storm: every client noted its cursor and closed
	PhasePosted     = "posted"     // storm: the senders' messages are answered sent
	PhaseCaughtUp   = "caughtup"   // storm: the clients reconnected and synced; Result set
	PhaseClosed     = "closed"     // sockets closed; the worker ends
)

// Phases lists the phases of a scenario in order.
func Phases(scenario string) []string {
	switch scenario {
	case ScenarioStorm:
		return []string{PhaseRegistered, PhaseConnected, PhaseOffline, PhasePosted, PhaseCaughtUp, PhaseClosed}
	case ScenarioChannel:
		return []string{PhaseRegistered, PhaseMembers, PhaseConnected, PhaseDrained, PhaseClosed}
	}
	return []string{PhaseRegistered, PhaseConnected, PhaseDrained, PhaseClosed}
}

// resultPhase is the phase whose report carries the worker's result.
func resultPhase(scenario string) string {
	if scenario == ScenarioStorm {
		return PhaseCaughtUp
	}
	return PhaseDrained
}

// WorkerMsg is what a worker reports: a phase, progress, or a failure.
type WorkerMsg struct {
	Phase    string        `json:"phase,omitempty"`
	Progress *Progress     `json:"progress,omitempty"`
	Result   *WorkerResult `json:"result,omitempty"`
	Err      string        `json:"err,omitempty"`
}

type worker struct {
	cfg     WorkerConfig
	enc     wire.Encoding
	srcs    *SourceIPs
	base    time.Time
	lay     layout
	http    *http.Client
	tokens  []string
	groups  []string    // group ids
	conns   []*lconn    // by user index
	cursors []uint64    // storm: each client's cursor after its first sync
	readBuf int         // each connection's read buffer, bytes
	poll    *poller     // reads every connection
	acks    chan ackReq // receipts load: what the recipients acknowledge (ReadEvery)
	ch      channelRun  // channel: the channel and what its members got
	counters
}

// userName is the name of user i of this worker.
func (w *worker) userName(i int) string {
	return fmt.Sprintf("%s-%d-%d", w.cfg.UsersPrefix, w.cfg.Worker, i)
}

func (w *worker) url(i int) string { return w.cfg.URLs[i%len(w.cfg.URLs)] }

func (cfg *WorkerConfig) defaults() {
	if cfg.Scenario == "" {
		cfg.Scenario = ScenarioDM
	}
	if cfg.RegisterPar <= 0 {
		cfg.RegisterPar = 16
	}
	if cfg.DialPar <= 0 {
		cfg.DialPar = 64
	}
	if cfg.Window <= 0 {
		cfg.Window = 8
	}
	if cfg.Members <= 0 {
		cfg.Members = 500
	}
	cfg.Senders = max(1, cfg.Senders)
}

func newWorker(cfg WorkerConfig) (*worker, error) {
	cfg.defaults()
	enc, err := wire.ParseEncoding(cfg.Encoding)
	if err != nil {
		return nil, err
	}
	lay := newLayout(cfg.Scenario, cfg.Conns, cfg.Members, cfg.Senders)
	if cfg.Scenario == ScenarioChannel {
		lay = channelLayout(cfg.Conns, cfg.Offline, cfg.Worker == 0)
	}
	// A dial holds two descriptors for a moment (the socket is duplicated, then
	// the net.Conn closed): DialPar more.
	if err := checkNoFile(lay.sockets() + cfg.RegisterPar + cfg.DialPar); err != nil {
		return nil, err
	}
	poll, err := newPoller(lay.users)
	if err != nil {
		return nil, err
	}
	w := &worker{cfg: cfg, enc: enc, srcs: NewSourceIPs(cfg.SrcIPs, cfg.SrcOffset), base: time.Now(), lay: lay, poll: poll,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.RegisterPar,
			DialContext: Dialer(NewSourceIPs(cfg.SrcIPs, cfg.SrcOffset).Next())}},
		conns: make([]*lconn, lay.users), readBuf: readBufSize(cfg.Scenario), acks: make(chan ackReq, 1<<16)}
	w.counters.init()
	w.ch.baseUnix = w.base.UnixNano()
	return w, nil
}

// readBufSize is a connection's read buffer: room for several frames where
// traffic flows (one read(2) then serves all that arrived), little for idle
// connections, which get one frame each.
func readBufSize(scenario string) int {
	if scenario == ScenarioIdle {
		return 256
	}
	return 4096
}

// checkNoFile fails early when this process may not open enough files.
func checkNoFile(sockets int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil
	}
	if need := uint64(sockets) + 64; need > lim.Cur {
		return fmt.Errorf("loadgen: a worker needs about %d open files, the limit is %d; use more -procs", need, lim.Cur)
	}
	return nil
}

// steps are a scenario's work, one per phase.
func (w *worker) steps() []func(ctx context.Context) error {
	clients := span(0, w.lay.clients)
	if w.cfg.PushOffline { // the recipients stay offline
		clients = slices.DeleteFunc(clients, w.pushRecipient)
	}
	connect := func(ctx context.Context) error {
		w.setupUp.Store(int64(w.connect(ctx, clients, nil)))
		return ctx.Err()
	}
	closeAll := func(context.Context) error { w.closeAll(span(0, w.lay.users)); return nil }
	switch w.cfg.Scenario {
	case ScenarioStorm:
		return []func(context.Context) error{w.setup, connect, w.offline, w.post, w.measure(w.reconnect), closeAll}
	case ScenarioChannel:
		return []func(context.Context) error{w.setup, w.channelMembers, w.channelConnect, w.measure(w.traffic), closeAll}
	}
	return []func(context.Context) error{w.setup, connect, w.measure(w.traffic), closeAll}
}

// measure wraps the measured phase's step: it notes this process's CPU time and
// the messages received while the step runs.
func (w *worker) measure(step func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		cpu, frames := SelfCPU(), w.framesIn.Load()
		err := step(ctx)
		w.measuredCPU, w.measuredFrames = SelfCPU()-cpu, w.framesIn.Load()-frames
		return err
	}
}

// RunWorker runs one worker's share: after each step it reports the phase
// through report, then waits for release before the next. It returns when its
// sockets are closed.
func RunWorker(ctx context.Context, cfg WorkerConfig, report func(WorkerMsg), release <-chan struct{}) error {
	w, err := newWorker(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer w.poll.stop() // after every connection is closed
	defer w.http.CloseIdleConnections()
	defer w.closeAll(span(0, w.lay.users))
	defer w.reportProgress(report)()

	phases, steps := Phases(w.cfg.Scenario), w.steps()
	for i, step := range steps {
		if i > 0 {
			if err := waitRelease(ctx, release); err != nil {
				return err
			}
		}
		if err := step(ctx); err != nil {
			return err
		}
		m := WorkerMsg{Phase: phases[i]}
		if phases[i] == resultPhase(w.cfg.Scenario) {
			res := w.result()
			m.Result = &res
		}
		p := w.progress() // fresh progress first, so that the parent's line is current
		report(WorkerMsg{Progress: &p})
		report(m)
	}
	return nil
}

func waitRelease(ctx context.Context, release <-chan struct{}) error {
	select {
	case _, ok := <-release:
		if !ok {
			return errors.New("loadgen: released with a closed channel")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// progressEvery is how often a worker reports progress: several times per
// progress line, so that the parent's line is never a second stale.
const progressEvery = 250 * time.Millisecond

// reportProgress reports progress every progressEvery until the returned stop is called.
func (w *worker) reportProgress(report func(WorkerMsg)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p := w.progress()
				report(WorkerMsg{Progress: &p})
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// waitUntil polls cond every 10ms until it holds, d has passed or ctx ends.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
	return true
}
