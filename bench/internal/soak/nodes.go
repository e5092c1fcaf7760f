package soak

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// The nodes: one slot per node position (its ports and its log file), each run by
// a sequence of processes. The soak starts them, SIGKILLs one at a time and starts
// it again, samples their RSS, and stops them all at the end.

// proc is one process of a slot.
type proc struct {
	slot    int // 0-based
	gen     int // 1 = the slot's first process
	pid     int
	started time.Time
	cmd     *exec.Cmd
	done    chan struct{} // closed when it has exited; exit is set then
	exit    string
	ended   time.Time
	killed  bool // SIGKILLed by the soak
	stopped bool // SIGTERMed by the soak at the end

	samples []memSample // guarded by the cluster's mu
}

// event is something that happened to a node, for the report.
type event struct {
	At     time.Time
	Slot   int
	What   string // kill, restart, exit (unexpected), stop
	PID    int
	Detail string
}

// cluster runs the nodes.
type cluster struct {
	cfg  *Config
	logs []*os.File

	mu     sync.Mutex
	cur    []*proc // nil while a slot is down
	procs  []*proc // every process, in start order
	events []event
	self   []memSample // this process's own RSS

	unexpected chan int // slots whose process exited without being killed
}

func newCluster(cfg *Config) (*cluster, error) {
	c := &cluster{cfg: cfg, cur: make([]*proc, cfg.Nodes), unexpected: make(chan int, 64)}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	for i := range cfg.Nodes {
		f, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			c.closeLogs()
			return nil, err
		}
		c.logs = append(c.logs, f)
	}
	return c, nil
}

func (c *cluster) logPath(slot int) string {
	return filepath.Join(c.cfg.LogDir, fmt.Sprintf("node%d.log", slot+1))
}

func (c *cluster) closeLogs() {
	for _, f := range c.logs {
		_ = f.Close()
	}
}

func (c *cluster) note(slot int, what string, pid int, format string, args ...any) {
	c.mu.Lock()
	c.events = append(c.events, event{At: time.Now(), Slot: slot, What: what, PID: pid, Detail: fmt.Sprintf(format, args...)})
	c.mu.Unlock()
}

// env is slot's environment: automanaged membership over the slots' health
// ports, mutual TLS when there are certificates.
func (c *cluster) env(slot int) []string {
	peers := make([]string, c.cfg.Nodes)
	for i := range peers {
		peers[i] = c.cfg.memberAddr(i)
	}
	env := append(os.Environ(),
		"DATABASE_URL="+c.cfg.DatabaseURL,
		"PARLEY_TOKEN_SECRET="+c.cfg.TokenSecret,
		"PARLEY_CLUSTER_PROVIDER=automanaged",
		"PARLEY_CLUSTER_HOST=127.0.0.1",
		"PARLEY_AUTOMANAGED_PORT="+strconv.Itoa(c.cfg.BasePort+41+slot),
		"PARLEY_AUTOMANAGED_PEERS="+strings.Join(peers, ","))
	if d := c.cfg.CertDir; d != "" {
		name := fmt.Sprintf("node%d", slot+1)
		env = append(env, "PARLEY_CLUSTER_TLS_CERT="+filepath.Join(d, name+".pem"),
			"PARLEY_CLUSTER_TLS_KEY="+filepath.Join(d, name+"-key.pem"), "PARLEY_CLUSTER_TLS_CA="+filepath.Join(d, "ca.pem"))
	}
	return env
}

// start starts slot's next process and waits until it answers /healthz.
func (c *cluster) start(ctx context.Context, slot int) (*proc, error) {
	c.mu.Lock()
	gen := 1
	for _, p := range c.procs {
		if p.slot == slot {
			gen++
		}
	}
	c.mu.Unlock()
	cmd := exec.Command(c.cfg.NodeBin, "-config", c.cfg.NodeConfig, "-http", c.cfg.nodeURL(slot)[len("http://"):],
		"-admin", c.cfg.adminAddr(slot))
	cmd.Env = c.env(slot)
	cmd.Stdout, cmd.Stderr = c.logs[slot], c.logs[slot]
	// The node dies with the soak, however the soak ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(c.logs[slot], "# soak: node %d process %d starting at %s\n", slot+1, gen, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting node %d: %w", slot+1, err)
	}
	p := &proc{slot: slot, gen: gen, pid: cmd.Process.Pid, started: time.Now(), cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	go c.wait(p)
	if err := c.healthy(ctx, p); err != nil {
		c.kill(p)
		return nil, err
	}
	c.mu.Lock()
	c.cur[slot] = p
	c.mu.Unlock()
	return p, nil
}

// wait reaps p, and reports an exit the soak did not cause.
func (c *cluster) wait(p *proc) {
	err := p.cmd.Wait()
	c.mu.Lock()
	p.ended = time.Now()
	p.exit = "exit 0"
	if err != nil {
		p.exit = err.Error()
	}
	expected := p.killed || p.stopped
	if c.cur[p.slot] == p {
		c.cur[p.slot] = nil
	}
	c.mu.Unlock()
	fmt.Fprintf(c.logs[p.slot], "# soak: node %d process %d (pid %d) ended at %s: %s\n", p.slot+1, p.gen, p.pid,
		p.ended.Format(time.RFC3339Nano), p.exit)
	close(p.done)
	if !expected {
		c.note(p.slot, "exit", p.pid, "exited by itself: %s", p.exit)
		select {
		case c.unexpected <- p.slot:
		default:
		}
	}
}

// healthy polls p's /healthz for up to a minute.
func (c *cluster) healthy(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	url := c.cfg.nodeURL(p.slot) + "/healthz"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := hc.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("node %d exited while starting (%s); see %s", p.slot+1, p.exit, c.logPath(p.slot))
		case <-ctx.Done():
			return fmt.Errorf("node %d did not answer /healthz: %w", p.slot+1, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kill SIGKILLs p and waits for it.
func (c *cluster) kill(p *proc) {
	c.mu.Lock()
	p.killed = true
	if c.cur[p.slot] == p {
		c.cur[p.slot] = nil
	}
	c.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// current is slot's running process, or nil.
func (c *cluster) current(slot int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur[slot]
}

// up tells whether slot has a process that answered /healthz.
func (c *cluster) up(slot int) bool { return c.current(slot) != nil }

// killAndRestart SIGKILLs slot's process, waits RestartDelay and starts the next.
func (c *cluster) killAndRestart(ctx context.Context, slot int) error {
	p := c.current(slot)
	if p == nil {
		return fmt.Errorf("node %d is not running", slot+1)
	}
	c.note(slot, "kill", p.pid, "SIGKILL to process %d (up %s)", p.gen, time.Since(p.started).Round(time.Second))
	c.kill(p)
	select {
	case <-time.After(c.cfg.RestartDelay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.restart(ctx, slot, time.Now())
}

// restart starts slot again; down is when it went down.
func (c *cluster) restart(ctx context.Context, slot int, down time.Time) error {
	start := time.Now()
	np, err := c.start(ctx, slot)
	if err != nil {
		return err
	}
	c.note(slot, "restart", np.pid, "process %d healthy %s after its start (%s after the kill)", np.gen,
		time.Since(start).Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
	return nil
}

// stopAll SIGTERMs every running node and waits up to a minute for each; a node
// still running then is SIGKILLed. It reports the ones that did not exit cleanly.
func (c *cluster) stopAll() []string {
	c.mu.Lock()
	var running []*proc
	for _, p := range c.procs {
		select {
		case <-p.done:
		default:
			p.stopped = true
			running = append(running, p)
		}
	}
	c.mu.Unlock()
	for _, p := range running {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var bad []string
	for _, p := range running {
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			c.kill(p)
			bad = append(bad, fmt.Sprintf("node %d process %d did not stop within 1m of SIGTERM", p.slot+1, p.gen))
			continue
		}
		if p.exit != "exit 0" {
			bad = append(bad, fmt.Sprintf("node %d process %d: SIGTERM ended it with %s", p.slot+1, p.gen, p.exit))
		}
		c.note(p.slot, "stop", p.pid, "SIGTERM: %s", p.exit)
	}
	return bad
}

// sample reads every running node's RSS and CPU, and this process's.
func (c *cluster) sample() {
	c.mu.Lock()
	cur := append([]*proc(nil), c.cur...)
	c.mu.Unlock()
	for _, p := range cur {
		if p == nil {
			continue
		}
		s, err := loadgen.ReadProc(p.pid)
		if err != nil {
			continue // it died between the two reads
		}
		c.mu.Lock()
		p.samples = append(p.samples, memSample{At: s.At, RSSKiB: s.RSSKiB, CPUSec: s.CPUSec})
		c.mu.Unlock()
	}
	if s, err := loadgen.ReadProc(os.Getpid()); err == nil {
		c.mu.Lock()
		c.self = append(c.self, memSample{At: s.At, RSSKiB: s.RSSKiB, CPUSec: s.CPUSec})
		c.mu.Unlock()
	}
}

// sampleEvery samples until ctx ends.
func (c *cluster) sampleEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	c.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sample()
		}
	}
}

// series returns every process's samples.
func (c *cluster) series() []memSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]memSeries, 0, len(c.procs)+1)
	for _, p := range c.procs {
		out = append(out, memSeries{Node: p.slot + 1, Process: p.gen, PID: p.pid, Started: p.started,
			Ended: p.ended, Samples: append([]memSample(nil), p.samples...)})
	}
	return out
}

// selfSeries is this process's samples.
func (c *cluster) selfSeries() memSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := memSeries{PID: os.Getpid(), Samples: append([]memSample(nil), c.self...)}
	if len(s.Samples) > 0 {
		s.Started = s.Samples[0].At
	}
	return s
}

// killEverything SIGKILLs whatever still runs (the soak failed or was cut short).
func (c *cluster) killEverything() {
	c.mu.Lock()
	var running []*proc
	for _, p := range c.procs {
		select {
		case <-p.done:
		default:
			running = append(running, p)
		}
	}
	c.mu.Unlock()
	for _, p := range running {
		c.kill(p)
	}
}
