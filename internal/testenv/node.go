package testenv

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// built holds the binaries Binary made in this test process, by package.
var built sync.Map // package path -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the main package pkg (a path from the module root, e.g.
// "./cmd/node") once per test process, with -race when the tests run with it (the
// binary's own races then fail the test that runs it), and returns its path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := built.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "parley-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		args := []string{"build", "-o", b.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// nodeBinary builds cmd/node once per test process.
func nodeBinary(t testing.TB) string { return Binary(t, "./cmd/node") }

// Node is a cmd/node process on loopback.
type Node struct {
	t        testing.TB
	URL      string // http://127.0.0.1:port
	AdminURL string // the admin endpoint
	// TokenSecretFile is the token key file the node is given
	// (PARLEY_TOKEN_SECRET_FILE): its test's, shared by every node the test
	// starts (see secretFile). Env given to StartNode or SetEnv may name another
	// file, or PARLEY_TOKEN_SECRET a key, which wins over any file.
	TokenSecretFile string

	addr      string
	adminAddr string
	env       []string
	args      []string
	cmd       *exec.Cmd
	log       *bytes.Buffer
	done      chan struct{}
	mu        sync.Mutex
}

// StartNode starts a node on a free loopback port against the database url, with
// a cluster.yaml of the given text ("" for the defaults) and extra environment
// (KEY=VALUE; a later value of a key wins). Its token key file is the test's
// (Node.TokenSecretFile); PARLEY_TOKEN_SECRET_FILE overrides the yaml's
// auth.tokenSecretFile, so name another file in env, not in the yaml. The node is
// killed at cleanup and its log is printed if the test failed.
func StartNode(t testing.TB, dbURL, yaml string, env ...string) *Node {
	t.Helper()
	n := &Node{t: t, addr: freeAddr(t), log: &bytes.Buffer{}, TokenSecretFile: secretFile(t)}
	n.URL = "http://" + n.addr
	// Races are read from the log (see races); the exit code stays the node's own.
	n.env = append(os.Environ(), "DATABASE_URL="+dbURL, "PARLEY_LOG_LEVEL=info", "GORACE=exitcode=0",
		"PARLEY_TOKEN_SECRET_FILE="+n.TokenSecretFile)
	n.env = append(n.env, env...)
	n.adminAddr = freeAddr(t)
	n.AdminURL = "http://" + n.adminAddr
	n.args = []string{"-http", n.addr, "-admin", n.adminAddr}
	if yaml != "" {
		path := filepath.Join(t.TempDir(), "cluster.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		n.args = append(n.args, "-config", path)
	}
	n.start()
	t.Cleanup(func() {
		n.Kill()
		ours, theirs := races(n.Log())
		if ours > 0 {
			t.Errorf("node %s reported %d data races in Parley's code", n.addr, ours)
		}
		if theirs > 0 {
			t.Logf("node %s: %d data races inside Proto.Actor only (research/protoactor.md §7)", n.addr, theirs)
		}
		if t.Failed() {
			n.mu.Lock()
			t.Logf("node %s log:\n%s", n.addr, n.log.String())
			n.mu.Unlock()
		}
	})
	return n
}

var (
	secretsMu sync.Mutex
	secrets   = map[testing.TB]string{} // the token key file of each test that started a node
)

// secretFile is the token key file of t's nodes, in a temporary directory of t: one
// per test (a subtest has its own), so that the nodes a test starts share their
// key as the nodes of a cluster must (a token one of them issued is good on the
// others), and no test uses the default file under the home directory
// (auth.tokenSecretFile). The first node to start creates it.
func secretFile(t testing.TB) string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	if path, ok := secrets[t]; ok {
		return path
	}
	path := filepath.Join(t.TempDir(), "token-secret")
	secrets[t] = path
	t.Cleanup(func() {
		secretsMu.Lock()
		delete(secrets, t)
		secretsMu.Unlock()
	})
	return path
}

type lockedBuffer struct{ n *Node }

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	return l.n.log.Write(p)
}

func (n *Node) start() {
	n.t.Helper()
	n.cmd = exec.Command(nodeBinary(n.t), n.args...)
	n.cmd.SysProcAttr = diesWithTest()
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = lockedBuffer{n}, lockedBuffer{n}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("starting node: %v", err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
	CheckFor(n.t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-n.done:
			return fmt.Errorf("node exited: %s", n.Log())
		default:
		}
		res, err := http.Get(n.URL + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
}

// Log returns what the node printed so far.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// Kill ends the process with SIGKILL and waits for it.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it returns the exit error.
func (n *Node) Stop(timeout time.Duration) error {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("node exited with %d", code)
		}
		return nil
	case <-time.After(timeout):
		n.Kill()
		return fmt.Errorf("node did not stop within %v", timeout)
	}
}

// Restart starts the process again on the same address after Kill or Stop.
func (n *Node) Restart() {
	n.t.Helper()
	n.start()
}

// SetEnv sets environment variables (KEY=VALUE) for the next Restart; a later value
// of a key wins.
func (n *Node) SetEnv(kv ...string) {
	n.env = append(n.env, kv...)
}

// FreeAddr returns a free loopback address (host:port).
func FreeAddr(t testing.TB) string { return freeAddr(t) }

// handedOut are the ports freeAddr gave in this process: a port is given once, so
// that two picked before either is bound (a node's HTTP and admin ports) differ.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freeAddr picks a free port below the kernel's ephemeral range (32768 and up by
// default): a node binds it later, or again after a restart, and a port from the
// ephemeral range could meanwhile be taken by some outgoing connection. No port is
// given twice in one process.
func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 1000 {
		port := 20000 + mrand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		handedOut.ports[port] = true
		return addr
	}
	t.Fatal("no free port in 20000..31999")
	return ""
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// NodeCommand returns a cmd/node command against the database url, for tests that
// expect it to fail or exit; ctx bounds it. Its token key file is the test's, as
// for StartNode.
func NodeCommand(ctx context.Context, t testing.TB, dbURL string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, nodeBinary(t), args...)
	cmd.SysProcAttr = diesWithTest()
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "PARLEY_TOKEN_SECRET_FILE="+secretFile(t))
	return cmd
}

// accessAt matches the header of one racing access; the frame after it is the code
// that touched the memory.
var accessAt = regexp.MustCompile(`(?m)^\s*(?:Previous )?(?:[Aa]tomic )?(?:[Rr]ead|[Ww]rite) at 0x[0-9a-f]+ by [^\n]*\n\s*(\S+)`)

// races counts the data race reports in a node's log: those where one of the two
// racing accesses is made by Parley's code, and those where both are made inside
// libraries (Proto.Actor's known races, even when Parley's code is further up the
// stack).
func races(log string) (ours, theirs int) {
	for _, block := range strings.Split(log, "WARNING: DATA RACE")[1:] {
		if end := strings.Index(block, "=================="); end >= 0 {
			block = block[:end]
		}
		mine := false
		for _, m := range accessAt.FindAllStringSubmatch(block, -1) {
			if strings.HasPrefix(m[1], "github.com/parleychat/parley/") {
				mine = true
			}
		}
		if mine {
			ours++
		} else {
			theirs++
		}
	}
	return ours, theirs
}

// diesWithTest makes a child process get SIGKILL when the test process dies, so
// that an interrupted test run leaves no servers behind.
func diesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
