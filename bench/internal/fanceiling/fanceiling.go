// Package fanceiling measures what this machine's loopback TCP allows a channel's
// live fan-out at best: a writer process that sends one frame to each of N sockets
// per burst (a channel post), and a reader process that holds the other ends and
// times each frame from its burst's scheduled time, with nothing of Parley in
// between. Both sides use raw non-blocking sockets and epoll, outside Go's
// netpoller: one write(2) per socket per burst (bursts that are due together go in
// one write, as Parley's hub coalesces them), one read(2) per readiness. Figures
// of a Parley channel run read against this one, measured in the same session,
// tell what the node adds to what the kernel costs.
package fanceiling

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// Config is one ceiling run.
type Config struct {
	Conns    int           // sockets (each side holds one per connection)
	Size     int           // bytes per frame, at least 16 (a send time and a burst number)
	Rates    []int         // bursts/s per phase; 0 is as fast as the writers go
	Duration time.Duration // per phase
	Writers  int           // writer goroutines, each with its share of the sockets (0: GOMAXPROCS)
}

// Phase is one rate's figures.
type Phase struct {
	Rate          int     `json:"rate"`         // bursts/s asked (0: as fast as possible)
	Bursts        int     `json:"bursts"`       // bursts written
	BurstsPerSec  float64 `json:"burstsPerSec"` // over the writing time
	Deliveries    uint64  `json:"deliveries"`   // frames the reader got
	Owed          uint64  `json:"owed"`         // bursts × conns
	PerSec        float64 `json:"deliveriesPerSec"`
	P50Ms         float64 `json:"p50Ms"` // burst's scheduled time -> read
	P99Ms         float64 `json:"p99Ms"`
	MaxMs         float64 `json:"maxMs"`
	WriterUsPer   float64 `json:"writerCpuUsPerDelivery"`
	ReaderUsPer   float64 `json:"readerCpuUsPerDelivery"`
	WriterCPUPct  float64 `json:"writerCpuPct"` // of one core
	ReaderCPUPct  float64 `json:"readerCpuPct"`
	WritesBlocked uint64  `json:"writesBlocked"` // writes the kernel did not take at once (the writer waited)
}

// readerReport is what the reader process prints after each phase.
type readerReport struct {
	Got   uint64  `json:"got"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	CPUUs float64 `json:"cpuUs"`
}

// Run listens on loopback, starts the reader with spawn(addr) (a child process in
// the command; a goroutine in tests), which must connect cfg.Conns sockets and
// then speak the reader's protocol on the returned pipes, and measures each rate.
func Run(cfg Config, spawn func(addr string) (io.WriteCloser, io.Reader, error)) ([]Phase, error) {
	if cfg.Size < 16 || cfg.Conns < 1 || cfg.Duration <= 0 {
		return nil, errors.New("fanceiling: need -conns >= 1, -size >= 16 and -duration > 0")
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	lfd, addr, err := listen()
	if err != nil {
		return nil, err
	}
	defer unix.Close(lfd)
	toReader, fromReader, err := spawn(addr)
	if err != nil {
		return nil, err
	}
	defer toReader.Close()
	fds := make([]int, 0, cfg.Conns)
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for len(fds) < cfg.Conns {
		// A reader that failed stops connecting: give up after 30 s without one.
		if n, err := unix.Poll([]unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}, 30000); err == nil && n == 0 {
			return nil, fmt.Errorf("fanceiling: the reader connected %d of %d sockets", len(fds), cfg.Conns)
		}
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("fanceiling: accept: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		fds = append(fds, fd)
	}
	replies := bufio.NewScanner(fromReader)
	if !replies.Scan() || replies.Text() != "ready" {
		return nil, fmt.Errorf("fanceiling: the reader did not get ready: %q %v", replies.Text(), replies.Err())
	}
	var out []Phase
	for _, rate := range cfg.Rates {
		fmt.Fprintf(toReader, "start\n")
		if !replies.Scan() || replies.Text() != "started" {
			return out, fmt.Errorf("fanceiling: the reader did not start: %v", replies.Err())
		}
		p := writePhase(cfg, fds, rate)
		fmt.Fprintf(toReader, "end %d\n", p.Owed)
		if !replies.Scan() {
			return out, fmt.Errorf("fanceiling: no report from the reader: %v", replies.Err())
		}
		var r readerReport
		if err := json.Unmarshal(replies.Bytes(), &r); err != nil {
			return out, fmt.Errorf("fanceiling: the reader's report: %w", err)
		}
		p.Deliveries, p.P50Ms, p.P99Ms, p.MaxMs = r.Got, r.P50Ms, r.P99Ms, r.MaxMs
		if r.Got > 0 {
			p.ReaderUsPer = r.CPUUs / float64(r.Got)
		}
		p.ReaderCPUPct = 100 * r.CPUUs / float64(cfg.Duration.Microseconds())
		out = append(out, p)
	}
	return out, nil
}

func listen() (int, string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	return fd, net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port)), nil
}

// writePhase writes bursts at rate for cfg.Duration. Burst k is due at start +
// k/rate and carries that time; a writer that is behind writes every due burst to
// each of its sockets in one write. At rate 0 each writer writes burst after burst,
// each stamped when its pass starts.
func writePhase(cfg Config, fds []int, rate int) Phase {
	start := time.Now()
	total := 0
	if rate > 0 {
		total = int(int64(rate) * int64(cfg.Duration) / int64(time.Second))
	}
	cpu0 := selfCPU()
	var blocked atomic.Uint64
	bursts := make([]int, cfg.Writers)
	var wg sync.WaitGroup
	for w := range cfg.Writers {
		var mine []int
		for i := w; i < len(fds); i += cfg.Writers {
			mine = append(mine, fds[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			bursts[w] = writer(cfg.Size, mine, start, rate, total, cfg.Duration, &blocked)
		}()
	}
	wg.Wait()
	cpu := selfCPU() - cpu0
	took := time.Since(start)
	if rate > 0 {
		took = cfg.Duration // the last burst is due 1/rate before the end
	}
	p := Phase{Rate: rate, Bursts: bursts[0], WritesBlocked: blocked.Load()}
	for _, b := range bursts[1:] {
		p.Bursts = min(p.Bursts, b)
	}
	p.BurstsPerSec = float64(p.Bursts) / took.Seconds()
	for w, b := range bursts { // every socket of writer w got b bursts
		n := 0
		for i := w; i < len(fds); i += cfg.Writers {
			n++
		}
		p.Owed += uint64(b) * uint64(n)
	}
	p.PerSec = float64(p.Owed) / took.Seconds()
	if p.Owed > 0 {
		p.WriterUsPer = float64(cpu.Microseconds()) / float64(p.Owed)
	}
	p.WriterCPUPct = 100 * cpu.Seconds() / took.Seconds()
	return p
}

// writer writes one goroutine's bursts to its sockets; it returns the bursts written.
func writer(size int, fds []int, start time.Time, rate, total int, d time.Duration, blocked *atomic.Uint64) int {
	frame := make([]byte, size)
	for i := 16; i < size; i++ {
		frame[i] = 'x'
	}
	var buf []byte
	next := 0
	for {
		var from, to int // bursts [from, to) go out in this pass
		var stamp func(k int) time.Time
		if rate > 0 {
			if next >= total {
				return next
			}
			due := start.Add(time.Duration(int64(next) * int64(time.Second) / int64(rate)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
			now := time.Since(start)
			to = min(total, int(int64(now)*int64(rate)/int64(time.Second))+1)
			from, to = next, max(to, next+1)
			stamp = func(k int) time.Time { return start.Add(time.Duration(int64(k) * int64(time.Second) / int64(rate))) }
		} else {
			if time.Since(start) >= d {
				return next
			}
			from, to = next, next+1
			at := time.Now()
			stamp = func(int) time.Time { return at }
		}
		buf = buf[:0]
		for k := from; k < to; k++ {
			binary.LittleEndian.PutUint64(frame[0:], uint64(stamp(k).UnixNano()))
			binary.LittleEndian.PutUint64(frame[8:], uint64(k))
			buf = append(buf, frame...)
		}
		for _, fd := range fds {
			writeAll(fd, buf, blocked)
		}
		next = to
	}
}

// writeAll writes b to the non-blocking fd, counting a write the kernel did not
// take whole (the writer then waits for room).
func writeAll(fd int, b []byte, blocked *atomic.Uint64) {
	n, err := unix.Write(fd, b)
	if err == nil && n == len(b) {
		return
	}
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		return // the reader went away; the missing frames show in its count
	}
	blocked.Add(1)
	_ = loadgen.WriteAll(fd, b[max(n, 0):], time.Now().Add(10*time.Second))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Read is the reader's side: it connects conns sockets to addr, says "ready" on
// out, and then for each "start" line on in counts and times frames until the
// "end OWED" line's count has arrived (or 30 s passed), and prints its report.
func Read(addr string, conns, size, workers int, in io.Reader, out io.Writer) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return fmt.Errorf("fanceiling: %s is not IPv4", addr)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rs := make([]*reader, workers)
	for i := range rs {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		rs[i] = &reader{epfd: epfd, size: size, part: map[int][]byte{}, hist: loadgen.NewHistogram()}
	}
	for i := range conns {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: p, Addr: [4]byte(ip)}); err != nil {
			return fmt.Errorf("fanceiling: connect %d: %w", i, err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return err
		}
		r := rs[i%workers]
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return err
		}
	}
	for _, r := range rs {
		go r.run()
	}
	fmt.Fprintln(out, "ready")
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		switch f := strings.Fields(lines.Text()); {
		case len(f) == 1 && f[0] == "start":
			for _, r := range rs {
				r.reset()
			}
			cpu0 := selfCPU()
			fmt.Fprintln(out, "started")
			if !lines.Scan() {
				return lines.Err()
			}
			g := strings.Fields(lines.Text())
			if len(g) != 2 || g[0] != "end" {
				return fmt.Errorf("fanceiling: want end, got %q", lines.Text())
			}
			owed, err := strconv.ParseUint(g[1], 10, 64)
			if err != nil {
				return err
			}
			deadline := time.Now().Add(30 * time.Second)
			got := func() (n uint64) {
				for _, r := range rs {
					n += r.got.Load()
				}
				return n
			}
			for got() < owed && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			cpu := selfCPU() - cpu0
			h := loadgen.NewHistogram()
			for _, r := range rs {
				r.mu.Lock()
				h.Merge(r.hist)
				r.mu.Unlock()
			}
			rep := readerReport{Got: got(), P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99)), MaxMs: ms(h.Max()), CPUUs: float64(cpu.Microseconds())}
			b, _ := json.Marshal(rep)
			fmt.Fprintln(out, string(b))
		default:
			return fmt.Errorf("fanceiling: unknown command %q", lines.Text())
		}
	}
	return lines.Err()
}

// readBuf is what one read(2) takes at most (tests make it smaller than a frame).
var readBuf = 64 << 10

// reader is one epoll worker of the reader process.
type reader struct {
	epfd int
	size int
	got  atomic.Uint64

	mu   sync.Mutex     // hist and part, between the worker and reset/report
	part map[int][]byte // a socket's bytes of a frame not complete yet
	hist *loadgen.Histogram
}

func (r *reader) reset() {
	r.mu.Lock()
	r.hist = loadgen.NewHistogram()
	r.mu.Unlock()
	r.got.Store(0)
}

func (r *reader) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, readBuf)
	for {
		n, err := unix.EpollWait(r.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		r.mu.Lock()
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			m, err := unix.Read(fd, buf)
			if err != nil || m <= 0 {
				if err != unix.EAGAIN {
					_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, fd, nil)
				}
				continue
			}
			r.frames(fd, buf[:m])
		}
		r.mu.Unlock()
	}
}

// frames times and counts the complete frames in b (after the socket's partial one).
func (r *reader) frames(fd int, b []byte) {
	now := time.Now().UnixNano()
	if p := r.part[fd]; len(p) > 0 {
		need := r.size - len(p)
		if len(b) < need {
			r.part[fd] = append(p, b...)
			return
		}
		p = append(p, b[:need]...)
		r.one(p, now)
		b = b[need:]
		delete(r.part, fd)
	}
	for len(b) >= r.size {
		r.one(b[:r.size], now)
		b = b[r.size:]
	}
	if len(b) > 0 {
		r.part[fd] = append([]byte(nil), b...)
	}
}

func (r *reader) one(f []byte, now int64) {
	sent := int64(binary.LittleEndian.Uint64(f))
	r.hist.Record(time.Duration(now - sent))
	r.got.Add(1)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Markdown is the phases as a table.
func Markdown(cfg Config, phases []Phase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bare loopback fan-out (bench/cmd/fanceiling): %d sockets, %d-byte frames, %d writer goroutines, "+
		"%s per rate; writer and reader are two processes on this machine's cores.\n\n", cfg.Conns, cfg.Size, cfg.Writers, cfg.Duration)
	b.WriteString("| bursts/s asked | bursts/s | deliveries/s | delivered / owed | p50 | p99 | max | writer CPU / delivery | reader CPU / delivery | writer CPU | reader CPU | writes that waited |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range phases {
		asked := strconv.Itoa(p.Rate)
		if p.Rate == 0 {
			asked = "as fast"
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.0f | %d / %d | %.2f ms | %.2f ms | %.2f ms | %.2f µs | %.2f µs | %.0f %% | %.0f %% | %d |\n",
			asked, p.BurstsPerSec, p.PerSec, p.Deliveries, p.Owed, p.P50Ms, p.P99Ms, p.MaxMs,
			p.WriterUsPer, p.ReaderUsPer, p.WriterCPUPct, p.ReaderCPUPct, p.WritesBlocked)
	}
	return b.String()
}
