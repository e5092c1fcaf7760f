package wsecho

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds how long the server child may take to print its address.
const startTimeout = 15 * time.Second

// serverProc is the echo server running as a child process.
type serverProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed when the child has been waited for
	err    error         // cmd.Wait's error, set before exited is closed
}

// startServer runs `bin -serve 127.0.0.1:0 -life life` and waits for the line that
// gives its address. The child is killed if this process dies (Pdeathsig); stop
// ends it otherwise.
func startServer(ctx context.Context, bin string, life time.Duration, stderr io.Writer) (*serverProc, error) {
	cmd := exec.Command(bin, "-serve", "127.0.0.1:0", "-life", life.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wsecho: starting the server %s: %w", bin, err)
	}
	p := &serverProc{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out) // keep the pipe drained until the child exits
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitAddr(ctx, lines); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitAddr reads the address from the child's first line.
func (p *serverProc) waitAddr(ctx context.Context, lines <-chan string) error {
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case line, ok := <-lines:
		if !ok {
			<-p.exited
			return fmt.Errorf("wsecho: the server did not start: %v", p.err)
		}
		addr, found := strings.CutPrefix(line, ListeningPrefix)
		if !found {
			return fmt.Errorf("wsecho: unexpected first line from the server: %q", line)
		}
		p.addr = strings.TrimSpace(addr)
		return checkLoopback(p.addr)
	case <-t.C:
		return fmt.Errorf("wsecho: the server printed no address within %s", startTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pid is the child's process id.
func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the child is still running.
func (p *serverProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after 3 s, and waits for the child.
func (p *serverProc) stop() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// timeWait counts the TCP sockets in TIME_WAIT (/proc/net/tcp) that have one of
// ips at either end: other work on the machine may leave its own on 127.0.0.1,
// which do not slow our connects.
func timeWait(ips []net.IP) (int, error) {
	ours := map[string]bool{}
	for _, ip := range ips {
		v4 := ip.To4()
		ours[fmt.Sprintf("%02X%02X%02X%02X", v4[3], v4[2], v4[1], v4[0])] = true // little-endian hex
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "06" { // 06 = TCP_TIME_WAIT
			continue
		}
		local, _, _ := strings.Cut(f[1], ":")
		remote, _, _ := strings.Cut(f[2], ":")
		if ours[local] || ours[remote] {
			n++
		}
	}
	return n, nil
}

// waitTimeWait waits (at most patience) until fewer than limit sockets from or to
// ips are in TIME_WAIT: a source address with thousands of them left over makes
// connect slow (machine.md §4.4). It returns the count it ended with.
func waitTimeWait(ctx context.Context, ips []net.IP, limit int, patience time.Duration, log io.Writer) int {
	deadline := time.Now().Add(patience)
	for {
		n, err := timeWait(ips)
		if err != nil || n < limit || time.Now().After(deadline) {
			return n
		}
		fmt.Fprintf(log, "wsecho: %d of our sockets in TIME_WAIT, waiting for fewer than %d\n", n, limit)
		select {
		case <-ctx.Done():
			return n
		case <-time.After(5 * time.Second):
		}
	}
}

// loadAvg returns the 1-minute load average (0 if unreadable).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
