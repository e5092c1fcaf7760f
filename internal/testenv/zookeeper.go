package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Debian zookeeper package (scripts/deps.sh zookeeper). Its jar's manifest
// lists the other jars it needs; slf4j-simple makes the server log to stderr.
const (
	zookeeperJar = "/usr/share/java/zookeeper.jar"
	slf4jSimple  = "/usr/share/java/slf4j-simple.jar"
)

var (
	zkInstallOnce sync.Once
	zkMissing     string // why no ZooKeeper server can run here ("" if it can)
)

// zookeeperMissing installs the ZooKeeper server once per test process if it is
// missing, and says why it still cannot run, or "".
func zookeeperMissing() string {
	zkInstallOnce.Do(func() {
		if _, err := os.Stat(zookeeperJar); err != nil {
			_, file, _, _ := runtime.Caller(0)
			root := filepath.Join(filepath.Dir(file), "..", "..")
			cmd := exec.Command(filepath.Join(root, "scripts", "deps.sh"), "zookeeper")
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if _, statErr := os.Stat(zookeeperJar); statErr != nil {
				zkMissing = fmt.Sprintf("ZooKeeper is not installed (%s missing) and `scripts/deps.sh zookeeper` could not install it: %v\n%s",
					zookeeperJar, err, bytes.TrimSpace(out))
				return
			}
		}
		if _, err := exec.LookPath("java"); err != nil {
			zkMissing = "ZooKeeper is installed but no java is on PATH: " + err.Error()
		}
	})
	return zkMissing
}

// StartZooKeeper starts a standalone ZooKeeper server on a free loopback port for
// this test and returns its host:port. It is killed at cleanup, and its log is
// printed if the test failed. If the server cannot be installed, the test is
// skipped (the only skip in this kit).
func StartZooKeeper(t testing.TB) (addr string) {
	t.Helper()
	if why := zookeeperMissing(); why != "" {
		t.Skipf("skipping: %s", why)
	}
	addr = freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := t.TempDir()
	cfg := fmt.Sprintf(`tickTime=2000
dataDir=%s
clientPort=%s
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,cons
`, t.TempDir(), port)
	cfgPath := filepath.Join(conf, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(conf, "zookeeper.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("java", "-Xmx256m", "-XX:+UseSerialGC",
		"-cp", strings.Join([]string{conf, zookeeperJar, slf4jSimple}, ":"),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting zookeeper: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("zookeeper %s log (tail):\n%s", addr, tail(string(out), 60))
		}
	})
	CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("zookeeper exited: %s", tail(string(out), 40))
		default:
		}
		return ready(addr)
	})
	return addr
}

// ready asks a ZooKeeper server whether it runs (ruok) and serves requests (srvr:
// ruok answers imok a moment before the server takes sessions).
func ready(addr string) error {
	if out, err := fourLetter(addr, "ruok"); out != "imok" {
		return fmt.Errorf("ruok answered %q (%v)", out, err)
	}
	if out, err := fourLetter(addr, "srvr"); !strings.Contains(out, "Mode: ") {
		return fmt.Errorf("srvr answered %q (%v)", out, err)
	}
	return nil
}

// fourLetter sends one of ZooKeeper's four-letter commands and returns the answer.
func fourLetter(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// ZooKeeperEnv is the environment of a node whose membership is in the
// ZooKeeper at addr (a server, or a Proxy in front of one).
func ZooKeeperEnv(addr string) []string {
	return []string{"PARLEY_CLUSTER_PROVIDER=zookeeper", "PARLEY_ZK_SERVERS=" + addr}
}

// StartZKCluster starts n nodes, one after the other, whose membership is in the
// ZooKeeper at zkAddr, with the cluster.yaml text and extra environment of
// StartNode. Their remote ports are ephemeral (a fresh member id per process).
func StartZKCluster(t testing.TB, dbURL, zkAddr, yaml string, n int, env ...string) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = StartNode(t, dbURL, yaml, append(ZooKeeperEnv(zkAddr), env...)...)
	}
	return nodes
}

// Wait waits up to timeout for the node's process to exit by itself and returns
// its exit code.
func (n *Node) Wait(timeout time.Duration) (exitCode int, err error) {
	select {
	case <-n.done:
		return n.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("node %s still running after %v", n.addr, timeout)
	}
}

// Proxy is a TCP proxy on loopback in front of a server, whose connections can be
// cut: a network partition between the clients that use it and the server, while
// the server stays up. It stops at test cleanup.
type Proxy struct {
	Addr   string // host:port to give clients
	target string
	ln     net.Listener

	mu      sync.Mutex
	dropped bool
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Drop closes every connection through the proxy, and closes new ones as soon as
// they are accepted, until Heal.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped = false
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers a connection; false if the proxy is dropping or closed (the
// connection is then closed).
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropped || p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(client)
			server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
			if err != nil {
				return
			}
			if !p.track(server) {
				return
			}
			defer p.untrack(server)
			copied := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(server, client); copied <- struct{}{} }()
			go func() { _, _ = io.Copy(client, server); copied <- struct{}{} }()
			<-copied // one direction ended: close both, which ends the other
			_ = client.Close()
			_ = server.Close()
			<-copied
		}()
	}
}
