package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence/postgres"
)

const password = "correct horse"

type env struct {
	mux    *http.ServeMux
	srv    *httptest.Server
	store  *postgres.Store
	signer *auth.Signer
	secret []byte
}

// mustStart serves a fresh API on a fresh database; opts adjust its options.
func mustStart(t *testing.T, presence api.Presence, opts ...func(*api.Options)) *env {
	t.Helper()
	store, err := postgres.Open(context.Background(), testenv.DatabaseURL(t), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	secret, err := auth.NewSecret()
	require.NoError(t, err)
	signer, err := auth.NewSigner(secret, time.Hour)
	require.NoError(t, err)
	mux := http.NewServeMux()
	o := api.Options{
		Store: store, Signer: signer, Presence: presence, BcryptCost: 4,
		Limits: config.Limits{HistoryDefault: 50, HistoryMax: 100},
	}
	for _, opt := range opts {
		opt(&o)
	}
	api.New(o).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{mux: mux, srv: srv, store: store, signer: signer, secret: secret}
}

// call sends a request with an optional bearer token and body.
func (e *env) call(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, data
}

// mustUser creates an account with the test password.
func (e *env) mustUser(t *testing.T, name, displayName string) {
	t.Helper()
	status, _, body := e.call(t, "POST", "/v1/users", "",
		`{"username":"`+name+`","password":"`+password+`","displayName":"`+displayName+`"}`)
	require.Equal(t, http.StatusCreated, status, string(body))
}

// mustLogin opens a session and returns its answer.
func (e *env) mustLogin(t *testing.T, name, device string) (token, deviceID string) {
	t.Helper()
	status, _, body := e.call(t, "POST", "/v1/sessions", "",
		`{"username":"`+name+`","password":"`+password+`","device":"`+device+`"}`)
	require.Equal(t, http.StatusCreated, status, string(body))
	var s struct{ Token, UserID, DeviceID string }
	require.NoError(t, json.Unmarshal(body, &s))
	require.Equal(t, name, s.UserID)
	return s.Token, s.DeviceID
}

// requireError checks the status and that body is exactly
// {"error":{"code":code,"message":<non-empty>}}.
func requireError(t *testing.T, status int, body []byte, wantStatus int, code string) {
	t.Helper()
	require.Equal(t, wantStatus, status, string(body))
	var outer map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &outer), string(body))
	require.Len(t, outer, 1, string(body))
	inner, ok := outer["error"]
	require.True(t, ok, string(body))
	require.Len(t, inner, 2, string(body))
	require.Equal(t, code, inner["code"])
	msg, ok := inner["message"].(string)
	require.True(t, ok, string(body))
	require.NotEmpty(t, msg)
}

func TestCreateUser(t *testing.T) {
	e := mustStart(t, nil)
	long := strings.Repeat("a", 33)
	cases := []struct {
		name, body string
		status     int
		code, want string // code of an error, else the exact answer
	}{
		{"created", `{"username":"alice","password":"` + password + `","displayName":"Alice <A>"}`, 201, "",
			`{"user":{"id":"alice","displayName":"Alice <A>"}}`},
		{"display name defaults", `{"username":"bo_b.1-x","password":"` + password + `"}`, 201, "",
			`{"user":{"id":"bo_b.1-x","displayName":"bo_b.1-x"}}`},
		{"display name 64 runes", `{"username":"carol","password":"` + password + `","displayName":"` +
			strings.Repeat("é", 64) + `"}`, 201, "", `{"user":{"id":"carol","displayName":"` + strings.Repeat("é", 64) + `"}}`},
		{"password 72 bytes", `{"username":"dave","password":"` + strings.Repeat("p", 72) + `"}`, 201, "",
			`{"user":{"id":"dave","displayName":"dave"}}`},
		{"taken", `{"username":"alice","password":"` + password + `"}`, 409, "conflict", ""},
		{"upper case", `{"username":"Alice","password":"` + password + `"}`, 400, "bad_request", ""},
		{"leading underscore", `{"username":"_al","password":"` + password + `"}`, 400, "bad_request", ""},
		{"colon", `{"username":"a:b","password":"` + password + `"}`, 400, "bad_request", ""},
		{"too long", `{"username":"` + long + `","password":"` + password + `"}`, 400, "bad_request", ""},
		{"missing username", `{"password":"` + password + `"}`, 400, "bad_request", ""},
		{"short password", `{"username":"erin","password":"1234567"}`, 400, "bad_request", ""},
		{"password 73 bytes", `{"username":"erin","password":"` + strings.Repeat("p", 73) + `"}`, 400, "bad_request", ""},
		{"display name too long", `{"username":"erin","password":"` + password + `","displayName":"` +
			strings.Repeat("x", 65) + `"}`, 400, "bad_request", ""},
		{"unparsable", `{"username":`, 400, "bad_request", ""},
		{"not an object", `[]`, 400, "bad_request", ""},
		{"wrong type", `{"username":5,"password":"` + password + `"}`, 400, "bad_request", ""},
		{"empty body", ``, 400, "bad_request", ""},
		{"oversized", `{"username":"erin","password":"` + password + `","x":"` + strings.Repeat("x", 70<<10) + `"}`,
			413, "too_large", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := e.call(t, "POST", "/v1/users", "", c.body)
			if c.code != "" {
				requireError(t, status, body, c.status, c.code)
				return
			}
			require.Equal(t, c.status, status, string(body))
			require.Equal(t, "application/json", hdr.Get("Content-Type"))
			require.JSONEq(t, c.want, string(body))
		})
	}
	u, err := e.store.User(context.Background(), "alice")
	require.NoError(t, err)
	require.True(t, auth.CheckPassword(u.PasswordHash, password))
}

func TestMethodNotAllowed(t *testing.T) {
	e := mustStart(t, nil)
	cases := []struct{ method, path, allow string }{
		{"GET", "/v1/sessions", "POST"},
		{"PUT", "/v1/users", "POST"},
		{"DELETE", "/v1/users/alice", "GET, HEAD"},
		{"POST", "/v1/conversations/dm:a:b/messages", "GET, HEAD"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			status, hdr, body := e.call(t, c.method, c.path, "", "")
			requireError(t, status, body, http.StatusMethodNotAllowed, "bad_request")
			require.Equal(t, c.allow, hdr.Get("Allow"))
		})
	}
}

func TestSessions(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	var unauthorized []string
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"right password", `{"username":"alice","password":"` + password + `"}`, 201, ""},
		{"wrong password", `{"username":"alice","password":"wrong password"}`, 401, "unauthorized"},
		{"unknown user", `{"username":"zed","password":"` + password + `"}`, 401, "unauthorized"},
		{"invalid username", `{"username":"Alice!","password":"` + password + `"}`, 401, "unauthorized"},
		{"bad device", `{"username":"alice","password":"` + password + `","device":"my phone"}`, 400, "bad_request"},
		{"device too long", `{"username":"alice","password":"` + password + `","device":"` +
			strings.Repeat("d", 65) + `"}`, 400, "bad_request"},
		{"unparsable", `{`, 400, "bad_request"},
		{"oversized", strings.Repeat(" ", 65<<10) + `{}`, 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := e.call(t, "POST", "/v1/sessions", "", c.body)
			if c.code != "" {
				requireError(t, status, body, c.status, c.code)
				if c.code == "unauthorized" {
					unauthorized = append(unauthorized, string(body))
				}
				return
			}
			require.Equal(t, c.status, status, string(body))
			require.Equal(t, "no-store", hdr.Get("Cache-Control"))
		})
	}
	require.Len(t, unauthorized, 3)
	require.Equal(t, unauthorized[0], unauthorized[1], "unknown user and wrong password look the same")
	require.Equal(t, unauthorized[0], unauthorized[2])
}

func TestSessionDevices(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	token, d1 := e.mustLogin(t, "alice", "phone-1")
	require.Equal(t, "phone-1", d1)
	_, again := e.mustLogin(t, "alice", "phone-1")
	require.Equal(t, d1, again, "a client reuses its device id")
	claims, err := e.signer.Verify(token)
	require.NoError(t, err)
	require.Equal(t, auth.Claims{UserID: "alice", DeviceID: "phone-1", Expires: claims.Expires}, claims)

	_, g1 := e.mustLogin(t, "alice", "")
	_, g2 := e.mustLogin(t, "alice", "")
	require.Regexp(t, `^d[0-9a-f]{16}$`, g1)
	require.NotEqual(t, g1, g2)

	var devices []string
	rows, err := e.store.Pool().Query(context.Background(),
		`SELECT device_id FROM devices WHERE user_id = 'alice' ORDER BY device_id`)
	require.NoError(t, err)
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		devices = append(devices, d)
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{"phone-1", g1, g2}, devices)
}

// tamper re-signs nothing: it swaps the token's subject and keeps the signature.
func tamper(t *testing.T, token, sub string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, json.Unmarshal(payload, &claims))
	claims["sub"] = sub
	payload, err = json.Marshal(claims)
	require.NoError(t, err)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestGetUser(t *testing.T) {
	presence := func(_ context.Context, user string) (string, int64, error) {
		switch user {
		case "alice":
			return "online", 5000, nil
		case "bob":
			return "", 0, errors.New("presence down")
		}
		return "away", 1, nil
	}
	e := mustStart(t, presence)
	e.mustUser(t, "alice", "Alice")
	e.mustUser(t, "bob", "Bob")
	seen := make(chan error, 1)
	e.store.SetLastSeen("bob", 1234, func(err error) { seen <- err })
	require.NoError(t, <-seen)
	token, _ := e.mustLogin(t, "alice", "")
	past, err := auth.NewSigner(e.secret, time.Minute, auth.WithClock(func() time.Time {
		return time.Now().Add(-time.Hour)
	}))
	require.NoError(t, err)
	expired, err := past.Issue("alice", "d1")
	require.NoError(t, err)

	cases := []struct {
		name, path, token string
		status            int
		code, want        string
	}{
		{"online", "/v1/users/alice", token, 200, "",
			`{"user":{"id":"alice","displayName":"Alice","status":"online","lastSeen":5000}}`},
		{"presence fails", "/v1/users/bob", token, 200, "",
			`{"user":{"id":"bob","displayName":"Bob","status":"offline","lastSeen":1234}}`},
		// Finding 12: REST takes no token from the URL (only the WebSocket upgrade does).
		{"token in query", "/v1/users/bob?token=" + token, "", 401, "unauthorized", ""},
		{"unknown user", "/v1/users/zed", token, 404, "not_found", ""},
		{"invalid id", "/v1/users/Zed", token, 404, "not_found", ""},
		{"no token", "/v1/users/alice", "", 401, "unauthorized", ""},
		{"garbage token", "/v1/users/alice", "abc", 401, "unauthorized", ""},
		{"tampered token", "/v1/users/alice", tamper(t, token, "bob"), 401, "unauthorized", ""},
		{"expired token", "/v1/users/alice", expired, 401, "unauthorized", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := e.call(t, "GET", c.path, c.token, "")
			if c.code != "" {
				requireError(t, status, body, c.status, c.code)
				if c.status == 401 {
					require.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
				}
				return
			}
			require.Equal(t, c.status, status, string(body))
			require.JSONEq(t, c.want, string(body))
		})
	}
}
