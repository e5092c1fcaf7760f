package wsecho

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// Mode is what the driver does with the connections once they are up.
type Mode string

// The modes.
const (
	ModeIdle Mode = "idle" // hold them without traffic and measure the server's RSS
	ModeEcho Mode = "echo" // keep a window of frames in flight on each and measure the echo rate
)

// Bounds of a run.
const (
	MaxConns  = 19000 // one process holds at most 20,000 open files here (machine.md §4)
	MaxWindow = 4096
	MaxSize   = 1 << 20
	MaxPhase  = 10 * time.Minute // longest Hold or Duration
	// MaxEchoMemory bounds the client buffers of an echo run: conns × (window+1) × size.
	MaxEchoMemory = 1 << 30
	setupTimeout  = 2 * time.Minute  // dialing and verifying every connection
	pingTimeout   = 10 * time.Second // one connection's first echo
	// timeWaitPatience bounds the wait for our source addresses' TIME_WAIT
	// sockets to drain before a run.
	timeWaitPatience = time.Minute
)

// Config is one run. The zero value of each field means its default.
type Config struct {
	Mode  Mode // ModeIdle or ModeEcho (required)
	Conns int  // client connections, 1..MaxConns (required)
	// SrcIPs spreads the client sockets over source addresses 127.0.0.2 ..
	// 127.0.0.(1+SrcIPs). Zero means 8.
	SrcIPs  int
	Dialers int // concurrent connection setups; zero means 64

	Hold time.Duration // idle: how long to hold the connections; zero means 10 s

	Window   int           // echo: frames in flight per connection; zero means 8
	Size     int           // echo: payload bytes per frame; zero means 64
	Duration time.Duration // echo: traffic time; zero means 5 s

	// ServerBin is the wsecho executable run as `ServerBin -serve 127.0.0.1:0`.
	// Empty means this program (os.Executable), which must then handle -serve.
	ServerBin string
	// Log receives progress lines and the server's stderr; nil means os.Stderr.
	Log io.Writer
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.SrcIPs, 8)
	def(&c.Dialers, 64)
	defDur(&c.Hold, 10*time.Second)
	def(&c.Window, 8)
	def(&c.Size, 64)
	defDur(&c.Duration, 5*time.Second)
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// validate checks a configuration that has its defaults.
func (c Config) validate() error {
	switch {
	case c.Mode != ModeIdle && c.Mode != ModeEcho:
		return fmt.Errorf("wsecho: mode %q: want %q or %q", c.Mode, ModeIdle, ModeEcho)
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("wsecho: -conns %d: want 1..%d (one server process holds at most ~19,990 sockets here)", c.Conns, MaxConns)
	case c.SrcIPs < 1 || c.SrcIPs > 253:
		return fmt.Errorf("wsecho: -src-ips %d: want 1..253", c.SrcIPs)
	case c.Dialers < 1 || c.Dialers > 1024:
		return fmt.Errorf("wsecho: -dialers %d: want 1..1024", c.Dialers)
	case c.Hold < 0 || c.Hold > MaxPhase || c.Duration < 0 || c.Duration > MaxPhase:
		return fmt.Errorf("wsecho: -hold and -duration must be within 0..%s", MaxPhase)
	case c.Window < 1 || c.Window > MaxWindow:
		return fmt.Errorf("wsecho: -window %d: want 1..%d", c.Window, MaxWindow)
	case c.Size < 1 || c.Size > MaxSize:
		return fmt.Errorf("wsecho: -size %d: want 1..%d", c.Size, MaxSize)
	case c.Mode == ModeEcho && int64(c.Conns)*int64(c.Window+1)*int64(c.Size) > MaxEchoMemory:
		return fmt.Errorf("wsecho: -conns × (-window+1) × -size is over %d MiB of client buffers", MaxEchoMemory>>20)
	}
	return nil
}

// phase is the idle hold or the echo traffic.
func (c Config) phase() time.Duration {
	if c.Mode == ModeIdle {
		return c.Hold
	}
	return c.Duration
}

// bound is the most a run may take: the TIME_WAIT wait, the server's start, the
// setup, the phase and its drain, the check after an idle hold, and a margin.
func (c Config) bound() time.Duration {
	return timeWaitPatience + startTimeout + setupTimeout + c.phase() + drainTimeout + setupTimeout + time.Minute
}

// Run starts the server child, connects, runs the mode and returns what it
// measured. Errors on single connections are counted in the Result; the error is
// for a run that could not happen at all.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bin := cfg.ServerBin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = exe
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.bound())
	defer cancel()
	res := newResult(cfg)
	res.TimeWait = waitTimeWait(ctx, sourceIPs(cfg.SrcIPs), 1000, timeWaitPatience, cfg.Log)
	res.LoadAvg[0] = loadAvg()
	srv, err := startServer(ctx, bin, cfg.bound()+30*time.Second, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	res.Server.PID = srv.pid()
	r := &runner{cfg: cfg, res: res, srv: srv, errs: &errorLog{}}
	err = r.run(ctx)
	res.Errors, res.FirstErrors = r.errs.count(), r.errs.first
	return res, err
}

// runner holds the state of one Run.
type runner struct {
	cfg     Config
	res     *Result
	srv     *serverProc
	errs    *errorLog
	clients []*client // the connections that are up
}

func (r *runner) run(ctx context.Context) error {
	defer r.closeAll()
	if err := r.warmUp(ctx); err != nil {
		return err
	}
	r.sample(&r.res.Server.Before)
	r.connect(ctx)
	r.sample(&r.res.Server.Connected)
	if !r.srv.alive() {
		return fmt.Errorf("wsecho: the server exited during setup: %v", r.srv.err)
	}
	self0, _ := loadgen.ReadProc(os.Getpid())
	start := time.Now()
	if r.cfg.Mode == ModeIdle {
		r.hold(ctx)
	} else {
		r.echo(ctx)
	}
	wall := time.Since(start)
	r.sample(&r.res.Server.End)
	self1, _ := loadgen.ReadProc(os.Getpid())
	r.res.DriverCPUSec = self1.CPUSec - self0.CPUSec
	r.res.LoadAvg[1] = loadAvg()
	if r.cfg.Mode == ModeIdle {
		r.res.AliveAtEnd = r.verify(ctx)
	}
	r.res.finish(wall)
	if !r.srv.alive() {
		return fmt.Errorf("wsecho: the server exited during the run: %v", r.srv.err)
	}
	return nil
}

// warmUp makes one connection and one echo, so that the baseline RSS already has
// the server's one-time costs of a first connection, then lets it settle.
func (r *runner) warmUp(ctx context.Context) error {
	c, err := dial(ctx, r.srv.addr, nil)
	if err != nil {
		return fmt.Errorf("wsecho: warm-up: %w", err)
	}
	p := make([]byte, 64)
	fill(p, -1, 0)
	err = c.ping(p, pingTimeout)
	c.close()
	if err != nil {
		return fmt.Errorf("wsecho: warm-up: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

// sample reads the server's RSS and CPU into dst.
func (r *runner) sample(dst *loadgen.ProcSample) {
	s, err := loadgen.ReadProc(r.srv.pid())
	if err != nil && r.res.Server.Error == "" {
		r.res.Server.Error = err.Error()
	}
	*dst = s
	r.res.Server.PeakRSSKiB = max(r.res.Server.PeakRSSKiB, s.RSSKiB)
}

// connect opens cfg.Conns connections with cfg.Dialers goroutines; each is up once
// its first frame came back.
func (r *runner) connect(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	ips := loadgen.NewSourceIPs(r.cfg.SrcIPs, 0)
	all := make([]*client, r.cfg.Conns)
	var next, up atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(r.cfg.Dialers, r.cfg.Conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(all); i = int(next.Add(1) - 1) {
				if c, err := r.connectOne(ctx, i, ips.Next()); err != nil {
					r.errs.add(fmt.Errorf("conn %d: %w", i, err))
				} else {
					all[i] = c
					up.Add(1)
				}
			}
		}()
	}
	stop := r.progress("connected", &up)
	wg.Wait()
	stop()
	r.res.SetupSec = time.Since(start).Seconds()
	for _, c := range all {
		if c != nil {
			r.clients = append(r.clients, c)
		}
	}
	r.res.ConnsUp = len(r.clients)
	r.res.SetupRate = float64(r.res.ConnsUp) / r.res.SetupSec
}

func (r *runner) connectOne(ctx context.Context, i int, src net.IP) (*client, error) {
	c, err := dial(ctx, r.srv.addr, src)
	if err != nil {
		return nil, err
	}
	p := make([]byte, 16)
	fill(p, i, 1<<63)
	if err := c.ping(p, pingTimeout); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// progress logs what of the total is done every second until stopped.
func (r *runner) progress(what string, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				fmt.Fprintf(r.cfg.Log, "wsecho: %s %d of %d\n", what, done.Load(), r.cfg.Conns)
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// hold keeps the connections idle for cfg.Hold, sampling the server every second
// for the peak RSS.
func (r *runner) hold(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(r.cfg.Hold)
	defer end.Stop()
	for r.srv.alive() {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-tick.C:
			var s loadgen.ProcSample
			r.sample(&s)
		}
	}
}

// echo runs the traffic and records what it measured.
func (r *runner) echo(ctx context.Context) {
	fmt.Fprintf(r.cfg.Log, "wsecho: echo on %d connections, window %d, %d-byte frames, for %s\n",
		len(r.clients), r.cfg.Window, r.cfg.Size, r.cfg.Duration)
	st := runEcho(ctx, r.clients, r.cfg.Window, r.cfg.Size, r.cfg.Duration, r.errs)
	r.res.Echo = newEchoResult(st)
}

// verify pings every connection once more and returns how many answered.
func (r *runner) verify(ctx context.Context) int {
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Dialers, len(r.clients)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(r.clients) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				p := make([]byte, 16)
				fill(p, i, 1<<62)
				if err := r.clients[i].ping(p, pingTimeout); err != nil {
					r.errs.add(fmt.Errorf("conn %d after the hold: %w", i, err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

// closeAll resets every client connection.
func (r *runner) closeAll() {
	for _, c := range r.clients {
		c.close()
	}
	r.clients = nil
}

// sourceIPs lists the client source addresses, as loadgen.NewSourceIPs hands them out.
func sourceIPs(k int) []net.IP {
	s := loadgen.NewSourceIPs(k, 0)
	ips := make([]net.IP, s.Len())
	for i := range ips {
		ips[i] = s.Next()
	}
	return ips
}

// platform describes this machine in a Result.
func platform() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}
