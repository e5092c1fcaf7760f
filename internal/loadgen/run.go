// Package loadgen drives Parley nodes on loopback with authenticated WebSocket
// clients and measures them: connection setup rate, send-to-sent and
// send-to-delivery latency, delivered messages/s, errors, and the node's RSS and
// CPU. cmd/loadgen is its command; RunWorker runs one process's share, and Run
// splits the connections over workers (goroutines, or child processes when
// Config.Procs > 1) and merges their results.
package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/convid"
)

// Config is one load run.
type Config struct {
	URLs        []string      // node base URLs (loopback only); connections go round robin
	Conns       int           // connections in total, one user each; users are paired
	UsersPrefix string        // user names are <prefix>-<worker>-<pair>{a,b}; "" = a fresh random prefix
	Rate        float64       // messages/s in total; 0 = as fast as the in-flight window allows
	Window      int           // unacknowledged sends per connection when Rate is 0 (default 8)
	Duration    time.Duration // traffic (or idle holding) time
	Drain       time.Duration // how long to wait after Duration for acks and deliveries (default 5s)
	Idle        bool          // connect and hold, no traffic
	Procs       int           // worker processes (1 = in this process)
	SrcIPs      int           // source addresses 127.0.0.2.. (0 = the kernel's choice)
	NodePID     int           // the node's pid for /proc RSS and CPU (0 = none)
	Encoding    string        // json (default) or proto
	RegisterPar int           // concurrent registrations and logins per worker (default 16)

	Progress io.Writer // the live progress line (nil = none)
	// WorkerCommand builds the child process of a worker when Procs > 1; nil
	// re-executes this program with -worker <json>.
	WorkerCommand func(ctx context.Context, wc WorkerConfig) (*exec.Cmd, error)
}

// Latency is a summary of one histogram, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
	MeanMs float64 `json:"meanMs"`
}

// NodeStats is the node's memory and CPU from /proc at three moments.
type NodeStats struct {
	PID        int        `json:"pid"`
	Start      ProcSample `json:"start"`      // before registering users
	Registered ProcSample `json:"registered"` // users logged in, before any WebSocket
	Connected  ProcSample `json:"connected"`  // all connections open and synced
	End        ProcSample `json:"end"`        // after traffic and drain, connections still open
	// RSSPerConnKiB is (Connected.RSS - Registered.RSS) / connections up.
	RSSPerConnKiB  float64 `json:"rssPerConnKiB"`
	RegisterCPUSec float64 `json:"registerCpuSec"`
	SetupCPUSec    float64 `json:"setupCpuSec"`
	TrafficCPUSec  float64 `json:"trafficCpuSec"`
	// TrafficCPUPercent is the node's CPU time over the traffic wall time (100 = one core).
	TrafficCPUPercent float64 `json:"trafficCpuPercent"`
	Error             string  `json:"error,omitempty"`
}

// Result is the merged outcome of a run.
type Result struct {
	Started     time.Time `json:"started"`
	URLs        []string  `json:"urls"`
	Conns       int       `json:"conns"`
	Procs       int       `json:"procs"`
	SrcIPs      int       `json:"srcIps"`
	Rate        float64   `json:"rate"`
	Duration    string    `json:"duration"`
	Idle        bool      `json:"idle"`
	Encoding    string    `json:"encoding"`
	UsersPrefix string    `json:"usersPrefix"`

	ConnsUp     int     `json:"connsUp"`
	SetupErrors uint64  `json:"setupErrors"`
	RegisterSec float64 `json:"registerSec"` // registering and logging in all users
	SetupSec    float64 `json:"setupSec"`    // dialing and syncing all connections
	SetupRate   float64 `json:"setupRate"`   // connections/s
	TrafficSec  float64 `json:"trafficSec"`  // traffic start to the last ack or delivery

	Sent            uint64            `json:"sent"`
	Acked           uint64            `json:"acked"`
	Delivered       uint64            `json:"delivered"`
	Duplicates      uint64            `json:"duplicates"`
	Echoes          uint64            `json:"echoes"`
	Missed          uint64            `json:"missed"`
	WriteErrors     uint64            `json:"writeErrors"`
	Closes          uint64            `json:"closes"`
	ErrorFrames     map[string]uint64 `json:"errorFrames"`
	AckedPerSec     float64           `json:"ackedPerSec"`
	DeliveredPerSec float64           `json:"deliveredPerSec"`
	SentLatency     Latency           `json:"sentLatency"`
	DeliveryLatency Latency           `json:"deliveryLatency"`
	Node            *NodeStats        `json:"node,omitempty"`
	FirstErrors     []string          `json:"firstErrors,omitempty"`
}

func summarize(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{Count: h.Count(), P50Ms: ms(h.Quantile(0.50)), P99Ms: ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()), MeanMs: ms(h.Mean())}
}

// split divides the connections in pairs over n workers.
func split(conns, n int) []int {
	pairs, odd := conns/2, conns%2
	out := make([]int, n)
	for i := range n {
		out[i] = 2 * (pairs / n)
		if i < pairs%n {
			out[i] += 2
		}
	}
	out[n-1] += odd
	return out
}

func randomPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lg" + hex.EncodeToString(b[:])
}

// validate fills defaults and checks the configuration.
func (cfg *Config) validate() error {
	urls, err := SplitURLs(cfg.URLs)
	if err != nil {
		return err
	}
	cfg.URLs = urls
	switch {
	case cfg.Conns < 1:
		return errors.New("loadgen: -conns must be at least 1")
	case cfg.Rate < 0:
		return errors.New("loadgen: -rate must not be negative")
	case cfg.Duration <= 0:
		return errors.New("loadgen: -duration must be positive")
	case cfg.SrcIPs < 0 || cfg.SrcIPs > 253:
		return errors.New("loadgen: -src-ips must be 0..253")
	}
	if cfg.Procs < 1 {
		cfg.Procs = 1
	}
	if cfg.Procs > max(1, cfg.Conns/2) {
		cfg.Procs = max(1, cfg.Conns/2)
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	if cfg.Encoding == "" {
		cfg.Encoding = "json"
	}
	if cfg.UsersPrefix == "" {
		cfg.UsersPrefix = randomPrefix()
	}
	// The longest name: <prefix>-<worker>-<pair>b must be a user id.
	longest := fmt.Sprintf("%s-%d-%db", cfg.UsersPrefix, cfg.Procs-1, cfg.Conns/2)
	if !convid.UserID.MatchString(longest) {
		return fmt.Errorf("loadgen: -users-prefix %q gives user names like %q, which are not valid user ids (%s)", cfg.UsersPrefix, longest, convid.UserID)
	}
	return nil
}

// event is a worker's message or its end.
type event struct {
	worker int
	msg    WorkerMsg
	exited bool
	err    error
}

type handle struct {
	release func() error
	abort   func()
}

// Run runs the load, prints progress, and returns the merged result. ctx ends it
// early (then an error is returned).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runID [3]byte
	_, _ = rand.Read(runID[:])
	shares := split(cfg.Conns, cfg.Procs)
	events := make(chan event, 64*cfg.Procs)
	handles := make([]handle, cfg.Procs)
	res := &Result{Started: time.Now(), URLs: cfg.URLs, Conns: cfg.Conns, Procs: cfg.Procs, SrcIPs: cfg.SrcIPs,
		Rate: cfg.Rate, Duration: cfg.Duration.String(), Idle: cfg.Idle, Encoding: cfg.Encoding, UsersPrefix: cfg.UsersPrefix,
		ErrorFrames: map[string]uint64{}}

	var node *NodeStats
	sample := func(dst *ProcSample) {
		if node == nil {
			return
		}
		s, err := ReadProc(node.PID)
		if err != nil && node.Error == "" {
			node.Error = err.Error()
		}
		*dst = s
	}
	if cfg.NodePID > 0 {
		node = &NodeStats{PID: cfg.NodePID}
		sample(&node.Start)
	}

	running := 0
	exited := make([]bool, cfg.Procs)
	// Whatever happens, every worker ends before Run returns.
	defer func() {
		cancel()
		for i := range handles {
			if !exited[i] && handles[i].abort != nil {
				handles[i].abort()
			}
		}
		for running > 0 {
			if ev := <-events; ev.exited {
				running--
			}
		}
	}()
	for i := range cfg.Procs {
		wc := WorkerConfig{Worker: i, URLs: cfg.URLs, Conns: shares[i], UsersPrefix: cfg.UsersPrefix,
			RunID: hex.EncodeToString(runID[:]), Rate: cfg.Rate * float64(shares[i]) / float64(cfg.Conns),
			Window: cfg.Window, Duration: Dur(cfg.Duration), Drain: Dur(cfg.Drain), Idle: cfg.Idle,
			SrcIPs: cfg.SrcIPs, SrcOffset: i, Encoding: cfg.Encoding, RegisterPar: cfg.RegisterPar}
		h, err := startWorker(ctx, cfg, wc, events)
		if err != nil {
			return nil, err
		}
		handles[i] = h
		running++
	}

	progress := make([]Progress, cfg.Procs)
	results := make([]*WorkerResult, cfg.Procs)
	counts := map[string]int{}
	lastPhase := make([]string, cfg.Procs)
	phase := "registering"
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	printProgress := func() {
		if cfg.Progress == nil {
			return
		}
		var sum Progress
		h := NewHistogram()
		for _, p := range progress {
			sum.ConnsUp += p.ConnsUp
			sum.Sent += p.Sent
			sum.Acked += p.Acked
			sum.Delivered += p.Delivered
			sum.Errors += p.Errors
			if p.Delivery != nil {
				h.Merge(histFromJSON(*p.Delivery))
			}
		}
		fmt.Fprintf(cfg.Progress, "[%s] %-11s conns up %d/%d  sent %d  acked %d  delivered %d  errors %d  p99 %s\n",
			time.Since(res.Started).Truncate(time.Second), phase, sum.ConnsUp, cfg.Conns, sum.Sent, sum.Acked, sum.Delivered,
			sum.Errors, h.Quantile(0.99).Round(10*time.Microsecond))
	}
	// waitFor consumes events until every worker reported ph.
	waitFor := func(ph string) error {
		for counts[ph] < cfg.Procs {
			select {
			case ev := <-events:
				switch {
				case ev.exited:
					running--
					exited[ev.worker] = true
					if ev.err != nil {
						return fmt.Errorf("loadgen: worker %d: %w", ev.worker, ev.err)
					}
					if lastPhase[ev.worker] != PhaseClosed {
						return fmt.Errorf("loadgen: worker %d ended before %s", ev.worker, ph)
					}
				case ev.msg.Err != "":
					return fmt.Errorf("loadgen: worker %d: %s", ev.worker, ev.msg.Err)
				case ev.msg.Progress != nil:
					progress[ev.worker] = *ev.msg.Progress
				case ev.msg.Phase != "":
					counts[ev.msg.Phase]++
					lastPhase[ev.worker] = ev.msg.Phase
					if ev.msg.Result != nil {
						results[ev.worker] = ev.msg.Result
					}
				}
			case <-tick.C:
				printProgress()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	releaseAll := func() error {
		for i, h := range handles {
			if err := h.release(); err != nil {
				return fmt.Errorf("loadgen: releasing worker %d: %w", i, err)
			}
		}
		return nil
	}

	if err := waitFor(PhaseRegistered); err != nil {
		return nil, err
	}
	res.RegisterSec = time.Since(res.Started).Seconds()
	if node != nil {
		sample(&node.Registered)
	}
	phase = "connecting"
	setupStart := time.Now()
	if err := releaseAll(); err != nil {
		return nil, err
	}
	if err := waitFor(PhaseConnected); err != nil {
		return nil, err
	}
	res.SetupSec = time.Since(setupStart).Seconds()
	if node != nil {
		sample(&node.Connected)
	}
	phase = "traffic"
	if cfg.Idle {
		phase = "idle"
	}
	trafficStart := time.Now()
	if err := releaseAll(); err != nil {
		return nil, err
	}
	if err := waitFor(PhaseDrained); err != nil {
		return nil, err
	}
	trafficWall := time.Since(trafficStart)
	if node != nil {
		sample(&node.End)
	}
	phase = "closing"
	printProgress()
	if err := releaseAll(); err != nil {
		return nil, err
	}
	if err := waitFor(PhaseClosed); err != nil {
		return nil, err
	}
	for running > 0 {
		ev := <-events
		if ev.exited {
			running--
			exited[ev.worker] = true
			if ev.err != nil {
				return nil, fmt.Errorf("loadgen: worker %d: %w", ev.worker, ev.err)
			}
		}
	}

	sent, deliv := NewHistogram(), NewHistogram()
	for i, r := range results {
		if r == nil {
			return nil, fmt.Errorf("loadgen: worker %d gave no result", i)
		}
		res.ConnsUp += r.ConnsUp
		res.SetupErrors += r.SetupErrors
		res.Sent += r.Sent
		res.Acked += r.Acked
		res.Delivered += r.Delivered
		res.Duplicates += r.Duplicates
		res.Echoes += r.Echoes
		res.Missed += r.Missed
		res.WriteErrors += r.WriteErrors
		res.Closes += r.Closes
		for k, v := range r.ErrorFrames {
			res.ErrorFrames[k] += v
		}
		res.TrafficSec = max(res.TrafficSec, r.ActiveSec)
		sent.Merge(histFromJSON(r.SentHist))
		deliv.Merge(histFromJSON(r.DeliverHist))
		if r.FirstError != "" {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("worker %d: %s", i, r.FirstError))
		}
	}
	if res.SetupSec > 0 {
		res.SetupRate = float64(res.ConnsUp) / res.SetupSec
	}
	if res.TrafficSec > 0 {
		res.AckedPerSec = float64(res.Acked) / res.TrafficSec
		res.DeliveredPerSec = float64(res.Delivered) / res.TrafficSec
	}
	res.SentLatency, res.DeliveryLatency = summarize(sent), summarize(deliv)
	if node != nil {
		if res.ConnsUp > 0 {
			node.RSSPerConnKiB = float64(node.Connected.RSSKiB-node.Registered.RSSKiB) / float64(res.ConnsUp)
		}
		node.RegisterCPUSec = node.Registered.CPUSec - node.Start.CPUSec
		node.SetupCPUSec = node.Connected.CPUSec - node.Registered.CPUSec
		node.TrafficCPUSec = node.End.CPUSec - node.Connected.CPUSec
		node.TrafficCPUPercent = 100 * node.TrafficCPUSec / trafficWall.Seconds()
		res.Node = node
	}
	return res, nil
}

// startWorker starts worker wc in this process (Procs == 1) or as a child.
func startWorker(ctx context.Context, cfg Config, wc WorkerConfig, events chan<- event) (handle, error) {
	if cfg.Procs == 1 {
		release := make(chan struct{}, 4)
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			err := RunWorker(wctx, wc, func(m WorkerMsg) { events <- event{worker: wc.Worker, msg: m} }, release)
			cancel()
			events <- event{worker: wc.Worker, exited: true, err: err}
		}()
		return handle{release: func() error { release <- struct{}{}; return nil }, abort: cancel}, nil
	}
	build := cfg.WorkerCommand
	if build == nil {
		build = selfCommand
	}
	cmd, err := build(ctx, wc)
	if err != nil {
		return handle{}, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return handle{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return handle{}, err
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return handle{}, fmt.Errorf("loadgen: starting worker %d: %w", wc.Worker, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m WorkerMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = WorkerMsg{Err: fmt.Sprintf("bad output line %q: %v", sc.Text(), err)}
			}
			events <- event{worker: wc.Worker, msg: m}
		}
		err := cmd.Wait()
		events <- event{worker: wc.Worker, exited: true, err: err}
	}()
	var once sync.Once
	return handle{
		release: func() error { _, err := io.WriteString(stdin, "go\n"); return err },
		abort: func() {
			once.Do(func() {
				_ = stdin.Close() // the worker ends on EOF; the kill is the fallback
				go func() {
					time.Sleep(5 * time.Second)
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}()
			})
		},
	}, nil
}

// selfCommand re-executes this program as a worker.
func selfCommand(ctx context.Context, wc WorkerConfig) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(wc)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-worker", string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// ServeWorker is the body of a worker process: wc is the -worker JSON; it writes
// WorkerMsg lines to out and takes one line of in per release. EOF on in (the
// parent went away) ends it.
func ServeWorker(ctx context.Context, wcJSON string, in io.Reader, out io.Writer) error {
	var wc WorkerConfig
	if err := json.Unmarshal([]byte(wcJSON), &wc); err != nil {
		return fmt.Errorf("loadgen: bad -worker: %w", err)
	}
	for _, u := range wc.URLs {
		if err := CheckLoopback(u); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	release := make(chan struct{}, 4)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			release <- struct{}{}
		}
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	report := func(m WorkerMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	err := RunWorker(ctx, wc, report, release)
	if err != nil {
		report(WorkerMsg{Err: err.Error()})
	}
	return err
}
