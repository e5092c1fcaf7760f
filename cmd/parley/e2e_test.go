package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// The acceptance tests of the CLI (issue 14, acceptance 3): real node processes
// against the test PostgreSQL, and real parley processes.

const (
	testPassword   = "correct horse battery"
	testAdminToken = "cli-test-admin-token"
	// nodeConfig: cheap password hashes, and an admin token to be refused or given.
	nodeConfig = "auth:\n  bcryptCost: 4\nadmin:\n  token: " + testAdminToken + "\n"
)

// parleyBinary builds cmd/parley once per test process (with -race when the tests
// run with it).
func parleyBinary(t *testing.T) string { return testenv.Binary(t, "./cmd/parley") }

// user is one person at a terminal: a config directory of their own.
type user struct {
	t    *testing.T
	name string
	env  []string
}

func newCLIUser(t *testing.T, n *testenv.Node, prefix string) *user {
	u := &user{t: t, name: testenv.Name(prefix)}
	u.env = cliEnv("PARLEY_CONFIG="+t.TempDir(), "PARLEY_URL="+n.URL, "PARLEY_PASSWORD="+testPassword)
	return u
}

// cliEnv is the test's environment without PARLEY_ variables (a developer's own
// PARLEY_URL must not leak in), plus kv. A race-built parley would sleep a second
// at every exit (GORACE atexit_sleep_ms); a race it finds still exits 66.
func cliEnv(kv ...string) []string {
	var env []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "PARLEY_") && !strings.HasPrefix(v, "GORACE=") {
			env = append(env, v)
		}
	}
	return append(append(env, "GORACE=atexit_sleep_ms=0"), kv...)
}

// result is how a parley process ended.
type result struct {
	code           int
	stdout, stderr string
}

// run runs parley to its end.
func (u *user) run(args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBinary(u.t), args...)
	cmd.Env = u.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	if err != nil && r.code <= 0 {
		u.t.Fatalf("parley %v: %v", args, err)
	}
	return r
}

// ok runs parley and requires exit code 0.
func (u *user) ok(args ...string) string {
	u.t.Helper()
	r := u.run(args...)
	require.Equal(u.t, 0, r.code, "parley %v: stdout %q, stderr %q", args, r.stdout, r.stderr)
	return r.stdout
}

// background is a parley process still running.
type background struct {
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	mu     sync.Mutex
	stderr []string
	done   chan struct{} // closed when it ended (cmd.ProcessState is set)
}

// start starts parley and returns once its stderr printed a line containing
// ready (listen: "listening as").
func (u *user) start(ready string, args ...string) *background {
	u.t.Helper()
	cmd := exec.Command(parleyBinary(u.t), args...)
	cmd.Env = u.env
	b := &background{cmd: cmd, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = b.stdout
	errPipe, err := cmd.StderrPipe()
	require.NoError(u.t, err)
	require.NoError(u.t, cmd.Start())
	isReady := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		signalled := false
		for sc.Scan() {
			b.mu.Lock()
			b.stderr = append(b.stderr, sc.Text())
			b.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), ready) {
				signalled = true
				close(isReady)
			}
		}
		_ = cmd.Wait() // after the last read of the pipe
		close(b.done)
	}()
	u.t.Cleanup(func() { _ = cmd.Process.Kill(); <-b.done })
	select {
	case <-isReady:
		return b
	case <-b.done:
		u.t.Fatalf("parley %v ended before printing %q: %v", args, ready, b.lines())
	case <-time.After(30 * time.Second):
		u.t.Fatalf("parley %v did not print %q within 30s: %v", args, ready, b.lines())
	}
	return nil
}

func (b *background) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.stderr...)
}

// wait waits for the process's end and returns its exit code and stdout.
func (b *background) wait(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		t.Fatalf("parley did not end within %v; stderr %v", d, b.lines())
	}
	return b.cmd.ProcessState.ExitCode(), b.stdout.String()
}

// Acceptance 3a: parley send from one process is printed by parley listen in
// another, as a JSON line and as a line for people.
func TestCLISendReachesListen(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), nodeConfig)
	alice, bob := newCLIUser(t, n, "alice"), newCLIUser(t, n, "bob")
	alice.ok("signup", alice.name)
	bob.ok("signup", bob.name, "--display-name", "Bob B")

	asJSON := bob.start("listening as "+bob.name, "listen", "--count", "1", "--json", "--timeout", "30s")
	asText := bob.start("listening as "+bob.name, "listen", "--count", "1", "--timeout", "30s")

	var sent struct {
		Type, ID, MessageID, Conversation string
		TS                                int64
	}
	out := alice.ok("send", bob.name, "hello", "from", "the", "CLI", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &sent), out)
	require.Equal(t, "sent", sent.Type)
	require.NotEmpty(t, sent.MessageID)

	code, got := asJSON.wait(t, 30*time.Second)
	require.Equal(t, 0, code, got)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	require.Len(t, lines, 1, got)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m), lines[0])
	require.Equal(t, "message", m["type"])
	require.Equal(t, alice.name, m["from"])
	require.Equal(t, bob.name, m["to"])
	require.Equal(t, "hello from the CLI", m["text"])
	require.Equal(t, sent.MessageID, m["messageId"])
	require.Equal(t, sent.Conversation, m["conversation"])

	code, got = asText.wait(t, 30*time.Second)
	require.Equal(t, 0, code, got)
	require.Contains(t, got, alice.name+" → you: hello from the CLI")

	// What scripts rely on: a conversation's history as JSON, and the exit codes of
	// the errors they meet.
	var page struct {
		Messages []struct{ MessageID, Text string }
	}
	require.NoError(t, json.Unmarshal([]byte(bob.ok("history", alice.name, "--json")), &page))
	require.Len(t, page.Messages, 1)
	require.Equal(t, sent.MessageID, page.Messages[0].MessageID)
	require.Contains(t, alice.ok("history", bob.name), "hello from the CLI")

	require.Equal(t, exitNotFound, alice.run("send", testenv.Name("nobody"), "hi").code, "send to an unknown user")
	require.Equal(t, exitNotFound, alice.run("contacts", "add", testenv.Name("nobody")).code, "contact that is no user")
	require.Equal(t, exitConflict, alice.run("signup", bob.name).code, "signup of a taken name")
	alice.ok("logout")
	require.Equal(t, exitUnauthed, alice.run("send", bob.name, "hi").code, "send after logout")
}

// Acceptance 3b: parley admin user NAME --json parses and names the node holding
// the user's connection: on a cluster of two, a parley listen connected to the
// second node is found by asking the first node's admin endpoint. It needs the
// admin endpoint of docs/ADMIN.md (GET /admin/cluster, GET /admin/users/{id}).
func TestCLIAdminUserNamesTheNode(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), nodeConfig, 2, 2)
	first, second := c.Nodes[0], c.Nodes[1]
	bob := newCLIUser(t, second, "bob")
	bob.env = append(bob.env, "PARLEY_ADMIN_TOKEN="+testAdminToken)
	bob.ok("signup", bob.name)

	type member struct {
		ID     string `json:"id"`
		Self   bool   `json:"self"`
		NodeID int    `json:"nodeId"`
		Status string `json:"status"`
	}
	var secondMember member
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		var ans struct{ Members []member }
		r := bob.run("admin", "cluster", "--json", "--admin", second.AdminURL)
		if r.code != 0 {
			return fmt.Errorf("admin cluster: exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil {
			return fmt.Errorf("admin cluster: %v: %s", err, r.stdout)
		}
		if len(ans.Members) != 2 {
			return fmt.Errorf("admin cluster: %d members", len(ans.Members))
		}
		for _, m := range ans.Members {
			if m.Self {
				secondMember = m
			}
		}
		return nil
	})
	require.NotEmpty(t, secondMember.ID, "the second node's member id")

	bob.start("listening as "+bob.name, "listen", "--timeout", "60s")
	var u struct {
		User        string `json:"user"`
		Active      bool   `json:"active"`
		Connections []struct {
			Device  string `json:"device"`
			Member  string `json:"member"`
			NodeID  int    `json:"nodeId"`
			Address string `json:"address"`
		} `json:"connections"`
	}
	testenv.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		r := bob.run("admin", "user", bob.name, "--json", "--admin", first.AdminURL)
		if r.code != 0 {
			return fmt.Errorf("admin user: exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
			return fmt.Errorf("admin user: %v: %s", err, r.stdout)
		}
		if len(u.Connections) != 1 {
			return fmt.Errorf("admin user: %d connections: %s", len(u.Connections), r.stdout)
		}
		return nil
	})
	require.Equal(t, bob.name, u.User)
	require.True(t, u.Active)
	require.Equal(t, secondMember.ID, u.Connections[0].Member, "the member holding the connection")
	require.Equal(t, secondMember.NodeID, u.Connections[0].NodeID, "the node id holding the connection")

	// The table names the node too; a wrong token is exit 3, an unknown user 4.
	table := bob.ok("admin", "user", bob.name, "--admin", first.AdminURL, "-v")
	require.Contains(t, table, secondMember.ID)
	wrong := bob.run("admin", "user", bob.name, "--admin", first.AdminURL, "--admin-token", "wrong")
	require.Equal(t, exitUnauthed, wrong.code, wrong.stderr)
	require.Equal(t, exitNotFound, bob.run("admin", "user", testenv.Name("nobody"), "--admin", first.AdminURL).code)
}
