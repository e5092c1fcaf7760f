package membership

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/testenv"
)

// recorder is a slog handler that keeps the messages logged, for waiting on them.
type recorder struct {
	t    testing.TB
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder(t testing.TB) (*slog.Logger, recorder) {
	r := recorder{t: t, mu: &sync.Mutex{}, msgs: &[]string{}}
	return slog.New(r), r
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r recorder) WithGroup(string) slog.Handler            { return r }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}

// waitLogged waits until msg was logged.
func (r recorder) waitLogged(msg string) {
	r.t.Helper()
	testenv.CheckFor(r.t, 10*time.Second, 20*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range *r.msgs {
			if m == msg {
				return nil
			}
		}
		return fmt.Errorf("%q not logged yet", msg)
	})
}

func zkConfig(servers ...string) config.Cluster {
	cfg := config.Default().Cluster
	cfg.Provider = config.ProviderZooKeeper
	cfg.ZooKeeper.Servers = servers
	cfg.ZooKeeper.SessionTimeout = 4 * time.Second
	return cfg
}

func TestZooKeeperUnreachableAtStartIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	log, _ := newRecorder(t)
	start := time.Now()
	var m *Membership
	require.NotPanics(t, func() { m, err = New(zkConfig(addr), log) })
	require.Nil(t, m)
	require.ErrorContains(t, err, "membership: zookeeper "+addr+" unreachable")
	require.ErrorContains(t, err, "connection refused")
	require.Less(t, time.Since(start), probeTimeout+3*time.Second)
	t.Logf("error after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// zkClient is the test's own connection, standing in for ZooKeeper's view of the
// cluster: it registers members and expires them (deletes their znodes).
func zkClient(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	log, _ := newRecorder(t)
	conn, events, err := zk.Connect([]string{addr}, 4*time.Second, zk.WithLogger(clientLogger(log, "test")))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline:
			t.Fatal("no zookeeper session")
		}
	}
}

// register creates a member znode the way the provider does.
func register(t *testing.T, conn *zk.Conn, clusterKey, id string) string {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(clusterKey, "/"), "/")
	for i := range parts {
		_, err := conn.Create("/"+strings.Join(parts[:i+1], "/"), nil, 0, zk.WorldACL(zk.PermAll))
		if err != zk.ErrNodeExists {
			require.NoError(t, err)
		}
	}
	body, err := json.Marshal(map[string]any{"id": id, "host": "127.0.0.1", "port": 1, "kinds": []string{"User"}})
	require.NoError(t, err)
	path, err := conn.CreateProtectedEphemeralSequential(clusterKey+"/actor-", body, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	return path
}

type watchResult struct {
	err error
	at  time.Time
}

func startWatchdog(t *testing.T, ctx context.Context, addr, clusterKey, id string) (<-chan watchResult, recorder) {
	t.Helper()
	log, rec := newRecorder(t)
	w := &watchdog{servers: []string{addr}, sessionTimeout: 4 * time.Second, baseKey: "/parley",
		interval: 100 * time.Millisecond, log: log}
	out := make(chan watchResult, 1)
	go func() {
		err := w.run(ctx, clusterKey, id)
		out <- watchResult{err, time.Now()}
	}()
	return out, rec
}

func result(t *testing.T, out <-chan watchResult, within time.Duration) watchResult {
	t.Helper()
	select {
	case r := <-out:
		return r
	case <-time.After(within):
		t.Fatalf("watchdog did not return within %v", within)
		return watchResult{}
	}
}

func requireRunning(t *testing.T, out <-chan watchResult) {
	t.Helper()
	select {
	case r := <-out:
		t.Fatalf("watchdog returned %v", r.err)
	default:
	}
}

func TestWatchdog(t *testing.T) {
	addr := testenv.StartZooKeeper(t)
	conn := zkClient(t, addr)
	const clusterKey = "/parley/wd"

	t.Run("returns nil when ctx ends", func(t *testing.T) {
		id := "wd@127.0.0.1:1001"
		register(t, conn, clusterKey, id)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out, rec := startWatchdog(t, ctx, addr, clusterKey, id)
		rec.waitLogged("membership: watching registration")
		time.Sleep(300 * time.Millisecond)
		requireRunning(t, out)
		cancel()
		require.NoError(t, result(t, out, 3*time.Second).err)
	})

	t.Run("registration deleted is eviction", func(t *testing.T) {
		id := "wd@127.0.0.1:1002"
		path := register(t, conn, clusterKey, id)
		out, rec := startWatchdog(t, testenv.Context(t, time.Minute), addr, clusterKey, id)
		rec.waitLogged("membership: watching registration")
		deleted := time.Now()
		require.NoError(t, conn.Delete(path, -1))
		r := result(t, out, 3*time.Second)
		require.ErrorContains(t, r.err, "registration "+path+" vanished")
		t.Logf("noticed %v after the delete: %v", r.at.Sub(deleted).Round(time.Millisecond), r.err)
	})

	t.Run("registration re-created is eviction", func(t *testing.T) {
		id := "wd@127.0.0.1:1003"
		body, _ := json.Marshal(map[string]string{"id": id})
		path := clusterKey + "/fixed-actor-0000000001"
		_, err := conn.Create(path, body, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		out, rec := startWatchdog(t, testenv.Context(t, time.Minute), addr, clusterKey, id)
		rec.waitLogged("membership: watching registration")
		_, err = conn.Multi(&zk.DeleteRequest{Path: path, Version: -1},
			&zk.CreateRequest{Path: path, Data: body, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral})
		require.NoError(t, err)
		require.ErrorContains(t, result(t, out, 3*time.Second).err, "registration "+path+" re-created")
	})

	t.Run("unreachable zookeeper is not eviction", func(t *testing.T) {
		id := "wd@127.0.0.1:1004"
		path := register(t, conn, clusterKey, id)
		proxy := testenv.StartProxy(t, addr)
		out, rec := startWatchdog(t, testenv.Context(t, time.Minute), proxy.Addr, clusterKey, id)
		rec.waitLogged("membership: watching registration")
		proxy.Drop()
		rec.waitLogged("membership: zookeeper unreachable; waiting")
		time.Sleep(5 * time.Second) // longer than the watchdog's own session timeout
		requireRunning(t, out)
		proxy.Heal()
		rec.waitLogged("membership: zookeeper reachable again")
		requireRunning(t, out)
		require.NoError(t, conn.Delete(path, -1))
		require.ErrorContains(t, result(t, out, 3*time.Second).err, "vanished")
	})

	t.Run("registration missing at start", func(t *testing.T) {
		out, _ := startWatchdog(t, testenv.Context(t, time.Minute), addr, clusterKey, "wd@127.0.0.1:1005")
		require.ErrorContains(t, result(t, out, 5*time.Second).err, "registration of wd@127.0.0.1:1005 not found")
	})
}

// The real-member tests run the Proto.Actor member in a child process (this test
// binary, see TestMain): under -race, the library's own data races (the zk
// provider's unsynchronised shutdown flag, research/providers.md §2.4) would
// otherwise fail the test process. The child prints what happens on stdout.
const helperEnv = "PARLEY_MEMBERSHIP_TEST_MEMBER" // the ZooKeeper address

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(runMember(addr))
	}
	os.Exit(m.Run())
}

// runMember is the child: a cluster member "evict" with the zookeeper membership;
// it runs Watch until SIGTERM or eviction, then leaves.
func runMember(addr string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := zkConfig(addr)
	cfg.Name = "evict"
	m, err := New(cfg, log)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	c := cluster.New(system, cluster.Configure(cfg.Name, m.Provider, disthash.New(), remote.Configure("127.0.0.1", 0)))
	m.Bind(c)
	c.StartMember()
	fmt.Println("READY", system.Address())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = m.Watch(ctx, c)
	fmt.Println("WATCH", err)
	c.Shutdown(true)
	fmt.Println("LEFT")
	return 0
}

// member is a child process running runMember.
type member struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
	done   chan struct{}
}

func startMember(t *testing.T, zkAddr string) *member {
	t.Helper()
	m := &member{done: make(chan struct{})}
	m.cmd = exec.Command(os.Args[0], "-test.run=^$")
	m.cmd.Env = append(os.Environ(), helperEnv+"="+zkAddr)
	m.cmd.Stderr = &m.stderr
	out, err := m.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, m.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			m.mu.Unlock()
		}
		_ = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.done
		ours, theirs := childRaces(m.stderr.String())
		if ours > 0 {
			t.Errorf("member: %d data races in this package's code", ours)
		}
		if theirs > 0 {
			t.Logf("member: %d data races inside Proto.Actor (research/providers.md §2.4)", theirs)
		}
		if t.Failed() {
			t.Logf("member output: %q\nstderr:\n%s", m.output(), m.stderr.String())
		}
	})
	return m
}

// childRaces counts the child's race reports whose racing accesses run through
// this package's non-test code, and the others.
func childRaces(stderr string) (ours, theirs int) {
	for _, block := range strings.Split(stderr, "WARNING: DATA RACE")[1:] {
		if end := strings.Index(block, "=================="); end >= 0 {
			block = block[:end]
		}
		if i := strings.Index(block, "\nGoroutine "); i >= 0 { // where goroutines started does not count
			block = block[:i]
		}
		if regexp.MustCompile(`membership\.(\(\*watchdog\)|\(\*zkLogger\)|probe|find|newZooKeeper|routeClientLogs)`).MatchString(block) {
			ours++
		} else {
			theirs++
		}
	}
	return ours, theirs
}

func (m *member) output() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// waitLine waits for an output line starting with prefix and returns the rest.
func (m *member) waitLine(t *testing.T, prefix string, within time.Duration) string {
	t.Helper()
	var rest string
	testenv.CheckFor(t, within, 20*time.Millisecond, func() error {
		for _, l := range m.output() {
			if strings.HasPrefix(l, prefix+" ") || l == prefix {
				rest = strings.TrimSpace(strings.TrimPrefix(l, prefix))
				return nil
			}
		}
		return fmt.Errorf("no %q line yet: %q", prefix, m.output())
	})
	return rest
}

// The watchdog finds the registration of a real Proto.Actor member (the provider's
// naming) and notices when ZooKeeper drops it; leaving then removes the znode the
// provider silently re-created.
func TestZooKeeperMemberEvicted(t *testing.T) {
	addr := testenv.StartZooKeeper(t)
	conn := zkClient(t, addr)
	m := startMember(t, addr)
	self := m.waitLine(t, "READY", 30*time.Second)

	children, _, err := conn.Children("/parley/evict")
	require.NoError(t, err)
	require.Len(t, children, 1)
	data, _, err := conn.Get("/parley/evict/" + children[0])
	require.NoError(t, err)
	require.Equal(t, "evict@"+self, memberID(data), "the provider's member id")

	time.Sleep(time.Second) // the watchdog has found its registration
	deleted := time.Now()
	require.NoError(t, conn.Delete("/parley/evict/"+children[0], -1))
	res := m.waitLine(t, "WATCH", 5*time.Second)
	require.Contains(t, res, "registration /parley/evict/"+children[0]+" vanished")
	t.Logf("noticed within %v of the delete: %s", time.Since(deleted).Round(time.Millisecond), res)

	m.waitLine(t, "LEFT", 15*time.Second)
	children, _, err = conn.Children("/parley/evict")
	require.NoError(t, err)
	require.Empty(t, children, "the re-created registration is removed on leaving")
}

// A member whose registration stays put watches until its context ends: Watch
// returns nil.
func TestZooKeeperMemberWatchEndsWithContext(t *testing.T) {
	addr := testenv.StartZooKeeper(t)
	m := startMember(t, addr)
	m.waitLine(t, "READY", 30*time.Second)
	time.Sleep(2 * time.Second)
	require.Empty(t, func() []string {
		for _, l := range m.output() {
			if strings.HasPrefix(l, "WATCH") {
				return []string{l}
			}
		}
		return nil
	}(), "Watch returned while registered")
	require.NoError(t, m.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, "<nil>", m.waitLine(t, "WATCH", 5*time.Second))
	m.waitLine(t, "LEFT", 15*time.Second)
}
