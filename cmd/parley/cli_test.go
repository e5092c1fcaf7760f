package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Unit tests of the CLI: run in this process against a stand-in for the REST API
// and the admin endpoint (e2e_test.go has the real ones).

const (
	fakeToken      = "tok-fake-session"
	fakeAdminToken = "adm-fake"
)

// fakeServer answers the calls the tests make, as a node would.
func fakeServer(t *testing.T, lastSeen int64) *httptest.Server {
	mux := http.NewServeMux()
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+fakeToken {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing or bad token")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Username, Password, Device string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Password != "right password" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "wrong username or password")
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"token": fakeToken, "userId": body.Username, "deviceId": "dfake"})
	})
	mux.HandleFunc("GET /v1/contacts", authed(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(contactsAnswer(lastSeen)))
	}))
	mux.HandleFunc("PUT /v1/contacts/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "nobody" {
			writeError(w, http.StatusNotFound, "not_found", "no such user")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/groups/{id}/members", authed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "forbidden", "only the owner adds members")
	}))
	mux.HandleFunc("GET /admin/cluster", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeAdminToken {
			writeError(w, http.StatusUnauthorized, "unauthorized", "admin token required")
			return
		}
		_, _ = w.Write([]byte(clusterAnswer))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func contactsAnswer(lastSeen int64) string {
	return `{"contacts":[{"id":"bob","displayName":"Bob B","status":"online"},` +
		`{"id":"carol","displayName":"Carol","status":"offline","lastSeen":` + jsonInt(lastSeen) + `}]}` + "\n"
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// clusterAnswer is docs/ADMIN.md's example of GET /admin/cluster, two members.
const clusterAnswer = `{"cluster":"parley","self":"5b3c9a1e77aa","members":[` +
	`{"id":"5b3c9a1e77aa","address":"127.0.0.1:7001","kinds":["user","conversation"],"status":"up","self":true,` +
	`"nodeId":3,"http":"127.0.0.1:8080","admin":"127.0.0.1:8081","startedAt":"2026-12-03T10:00:00Z",` +
	`"uptimeSeconds":3600,"version":"v0.1.0","grains":{"user":10,"conversation":4},"connections":12},` +
	`{"id":"9f1a00c2d4e5","address":"127.0.0.1:7002","kinds":["user","conversation"],"status":"unreachable",` +
	`"nodeId":2,"http":"127.0.0.1:8090","admin":"127.0.0.1:8091","uptimeSeconds":0,"version":"v0.1.0"}]}`

// cli runs parley in this process with env as its whole environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, srv *httptest.Server) *cli {
	return &cli{t: t, env: map[string]string{"PARLEY_CONFIG": filepath.Join(t.TempDir(), "cfg"), "PARLEY_URL": srv.URL}}
}

func (c *cli) run(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code = run(ctx, args, streams{in: strings.NewReader(""), out: &out, err: &errb}, func(k string) string { return c.env[k] })
	return code, out.String(), errb.String()
}

func (c *cli) login() {
	c.t.Helper()
	code, _, stderr := c.run("login", "alice", "--password", "right password")
	require.Equal(c.t, 0, code, stderr)
}

func TestExitCodes(t *testing.T) {
	srv := fakeServer(t, 0)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // a port nothing listens on any more
	cases := []struct {
		name   string
		login  bool
		args   []string
		code   int
		stderr string
	}{
		{name: "help", args: []string{"--help"}, code: exitOK},
		{name: "no command", args: nil, code: exitUsage, stderr: "needs a subcommand"},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{name: "bad flag", args: []string{"send", "--bogus", "bob", "hi"}, code: exitUsage, stderr: "flag provided but not defined"},
		{name: "bad flag value", args: []string{"listen", "--count", "many"}, code: exitUsage, stderr: "invalid value"},
		{name: "missing argument", args: []string{"group", "add", "g1"}, code: exitUsage, stderr: "usage: parley group add ID USER..."},
		{name: "two targets", args: []string{"send", "--group", "g", "--channel", "c", "hi"}, code: exitUsage},
		{name: "not logged in", args: []string{"contacts"}, code: exitUnauthed, stderr: "not logged in"},
		{name: "not logged in as", args: []string{"--as", "zed", "send", "bob", "hi"}, code: exitUnauthed, stderr: "not logged in as zed"},
		{name: "wrong password", args: []string{"login", "alice", "--password", "wrong"}, code: exitUnauthed, stderr: "wrong username or password"},
		{name: "unknown user", login: true, args: []string{"contacts", "add", "nobody"}, code: exitNotFound, stderr: "no such user (not_found)"},
		{name: "forbidden", login: true, args: []string{"group", "add", "g1", "carol"}, code: exitForbidden, stderr: "only the owner"},
		{name: "admin token refused", args: []string{"admin", "cluster", "--admin", srv.URL, "--admin-token", "bad"}, code: exitUnauthed, stderr: "--admin-token"},
		{name: "admin without token", args: []string{"admin", "cluster", "--admin", srv.URL}, code: exitUnauthed},
		{name: "server down", login: true, args: []string{"--url", downURL, "contacts"}, code: exitError1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, srv)
			if tc.login {
				c.login()
			}
			code, _, stderr := c.run(tc.args...)
			require.Equal(t, tc.code, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tc.stderr)
		})
	}
}

// Every command and subcommand answers --help on stdout with exit code 0, and
// `help CMD` says the same.
func TestEveryCommandHasHelp(t *testing.T) {
	srv := fakeServer(t, 0)
	var walk func(path []string, cmds []*command)
	walk = func(path []string, cmds []*command) {
		for _, c := range cmds {
			p := append(append([]string(nil), path...), c.name)
			t.Run(strings.Join(p, " "), func(t *testing.T) {
				code, stdout, stderr := newCLI(t, srv).run(append(p, "--help")...)
				require.Equal(t, 0, code, stderr)
				require.True(t, strings.HasPrefix(stdout, "usage: parley "+strings.Join(p, " ")+" "), stdout)
				require.Contains(t, stdout, "Global flags:")
				require.Empty(t, stderr)
			})
			walk(p, c.subs)
		}
	}
	walk(nil, commands)
	code, stdout, _ := newCLI(t, srv).run("help", "send")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(stdout, "usage: parley send "), stdout)
}

func TestContactsTable(t *testing.T) {
	seen := time.Now().Add(-time.Minute).UnixMilli()
	c := newCLI(t, fakeServer(t, seen))
	c.login()
	code, stdout, stderr := c.run("contacts")
	require.Equal(t, 0, code, stderr)
	want := "USER   NAME   STATUS   LAST SEEN\n" +
		"bob    Bob B  online\n" +
		"carol  Carol  offline  " + clock(seen) + "\n"
	require.Equal(t, want, stdout)
}

// --json prints the server's answer as it came, whatever the flag's position.
func TestJSONIsTheServersAnswer(t *testing.T) {
	c := newCLI(t, fakeServer(t, 42))
	c.login()
	for _, args := range [][]string{{"--json", "contacts"}, {"contacts", "--json"}, {"contacts", "list", "--json"}} {
		code, stdout, stderr := c.run(args...)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, contactsAnswer(42), stdout, "%v", args)
	}
	code, stdout, _ := c.run("contacts", "add", "bob", "--json") // 204: nothing to print
	require.Equal(t, 0, code)
	require.Empty(t, stdout)
}

func TestAdminClusterTable(t *testing.T) {
	srv := fakeServer(t, 0)
	c := newCLI(t, srv)
	c.env["PARLEY_ADMIN_TOKEN"] = fakeAdminToken
	code, stdout, stderr := c.run("admin", "cluster", "--admin", srv.URL)
	require.Equal(t, 0, code, stderr)
	want := "MEMBER          NODE  ADDRESS         HTTP            STATUS       USERS  CONVERSATIONS  CONNECTIONS  UPTIME  VERSION\n" +
		"5b3c9a1e77aa *  3     127.0.0.1:7001  127.0.0.1:8080  up           10     4              12           1h0m0s  v0.1.0\n" +
		"9f1a00c2d4e5    2     127.0.0.1:7002  127.0.0.1:8090  unreachable                                             v0.1.0\n"
	require.Equal(t, want, stdout)

	code, stdout, _ = c.run("admin", "cluster", "--admin", srv.URL, "--json")
	require.Equal(t, 0, code)
	require.Equal(t, clusterAnswer+"\n", stdout)
}

// login keeps the session in a file of mode 0600 in directories of mode 0700,
// prints no token, and the next commands use it.
func TestSessionFiles(t *testing.T) {
	srv := fakeServer(t, 0)
	c := newCLI(t, srv)
	dir := c.env["PARLEY_CONFIG"]
	code, stdout, stderr := c.run("login", "alice", "--password", "right password", "--json")
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stdout+stderr, fakeToken)
	var who map[string]string
	require.NoError(t, json.Unmarshal([]byte(stdout), &who))
	require.Equal(t, map[string]string{"user": "alice", "device": "dfake", "url": srv.URL}, who)

	for path, mode := range map[string]os.FileMode{
		dir:                            0o700,
		filepath.Join(dir, "sessions"): 0o700,
		filepath.Join(dir, "sessions", "alice.json"): 0o600,
		filepath.Join(dir, "current"):                0o600,
	} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sessions", "alice.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), fakeToken)

	// The password from stdin, when neither the flag nor PARLEY_PASSWORD gives one.
	var out, errb bytes.Buffer
	env := map[string]string{"PARLEY_CONFIG": dir, "PARLEY_URL": srv.URL}
	code = run(context.Background(), []string{"login", "bob"}, streams{in: strings.NewReader("right password\n"), out: &out, err: &errb},
		func(k string) string { return env[k] })
	require.Equal(t, 0, code, errb.String())
	code, stdout, _ = c.run("whoami")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "bob")
	code, stdout, _ = c.run("--as", "alice", "whoami")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "alice")
	code, _, _ = c.run("--as", "alice", "contacts")
	require.Equal(t, 0, code)
}

func TestParseInterspersed(t *testing.T) {
	cases := []struct {
		name string
		args []string
		pos  []string
		json bool
		n    int
	}{
		{"flags first", []string{"--json", "-n", "3", "bob", "hi"}, []string{"bob", "hi"}, true, 3},
		{"flags last", []string{"bob", "hi", "--json", "-n=3"}, []string{"bob", "hi"}, true, 3},
		{"flags between", []string{"bob", "--json", "hi"}, []string{"bob", "hi"}, true, 0},
		{"double dash", []string{"bob", "--", "--json", "-n"}, []string{"bob", "--json", "-n"}, false, 0},
		{"lone dash", []string{"bob", "-"}, []string{"bob", "-"}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			j := fs.Bool("json", false, "")
			n := fs.Int("n", 0, "")
			pos, err := parseInterspersed(fs, tc.args)
			require.NoError(t, err)
			require.Equal(t, tc.pos, pos)
			require.Equal(t, tc.json, *j)
			require.Equal(t, tc.n, *n)
		})
	}
}

// A user id names a session file: one from the server that is no user id (a path)
// is refused, and a config directory that exists keeps its mode.
func TestSessionPathsAreUserIDs(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "cfg")
	require.NoError(t, os.Mkdir(dir, 0o755))
	e := &env{}
	e.g.config.v = dir
	require.Error(t, e.saveSession(session{User: "../evil", Token: "t"}))
	require.Error(t, e.saveSession(session{User: "a/b", Token: "t"}))
	_, err := os.Stat(filepath.Join(parent, "evil.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, ok := e.storedSession("../cfg/current")
	require.False(t, ok)

	require.NoError(t, e.saveSession(session{User: "alice", Token: "t"}))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "a directory the user made is left as it is")
	fi, err = os.Stat(filepath.Join(dir, "sessions", "alice.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
