package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// fakeClock is a settable clock for the throttles.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// callFrom serves one request from the source address addr (host:port).
func (e *env) callFrom(t *testing.T, addr, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = addr
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.Bytes()
}

func (e *env) loginFrom(t *testing.T, addr, user, pw string) (int, http.Header) {
	t.Helper()
	status, hdr, body := e.callFrom(t, addr, "POST", "/v1/sessions", `{"username":"`+user+`","password":"`+pw+`"}`)
	switch status {
	case http.StatusCreated:
	case http.StatusUnauthorized:
		requireError(t, status, body, status, "unauthorized")
	case http.StatusTooManyRequests:
		requireError(t, status, body, status, "rate_limited")
	default:
		t.Fatalf("login %s from %s: %d %s", user, addr, status, body)
	}
	return status, hdr
}

func withThrottle(th api.Throttle) func(*api.Options) {
	return func(o *api.Options) { o.Throttle = th }
}

// Finding 7: failed logins are limited per source address and per account.
func TestLoginThrottle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	e := mustStart(t, nil, withThrottle(api.Throttle{
		LoginPerAddress: config.RateLimit{Rate: 0.17, Burst: 3},
		LoginPerAccount: config.RateLimit{Rate: 0.17, Burst: 3},
		Exempt:          []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:             clk.now,
	}))
	for _, u := range []string{"alice", "bob", "carol"} {
		e.mustUser(t, u, "")
	}
	const mallory, bobs, other = "198.51.100.7:4000", "203.0.113.9:5000", "192.0.2.50:6000"

	t.Run("the 4th wrong password in a burst is 429", func(t *testing.T) {
		for i := range 3 {
			status, _ := e.loginFrom(t, mallory, "alice", "guess-"+string(rune('a'+i))+"xxxxxx")
			require.Equal(t, http.StatusUnauthorized, status, "guess %d", i+1)
		}
		status, hdr := e.loginFrom(t, mallory, "alice", "guess-dxxxxxx")
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Equal(t, "6", hdr.Get("Retry-After"), "1/0.17 s, rounded up")
		status, _ = e.loginFrom(t, mallory, "alice", password)
		require.Equal(t, http.StatusTooManyRequests, status, "even the right password, unchecked")
	})
	t.Run("other users are unaffected", func(t *testing.T) {
		status, _ := e.loginFrom(t, bobs, "bob", password)
		require.Equal(t, http.StatusCreated, status)
		status, _ = e.loginFrom(t, bobs, "bob", "typo-password")
		require.Equal(t, http.StatusUnauthorized, status)
	})
	t.Run("the account stays limited from another address", func(t *testing.T) {
		status, _ := e.loginFrom(t, other, "alice", password)
		require.Equal(t, http.StatusTooManyRequests, status)
	})
	t.Run("the address stays limited for other accounts", func(t *testing.T) {
		status, _ := e.loginFrom(t, mallory, "carol", "guess-password")
		require.Equal(t, http.StatusTooManyRequests, status)
	})
	t.Run("buckets refill", func(t *testing.T) {
		clk.advance(6 * time.Second)
		status, _ := e.loginFrom(t, other, "alice", password)
		require.Equal(t, http.StatusCreated, status)
	})
	t.Run("one address spraying accounts", func(t *testing.T) {
		const sprayer = "198.51.100.99:1"
		for _, u := range []string{"nobody1", "nobody2", "carol"} {
			status, _ := e.loginFrom(t, sprayer, u, "guess-password")
			require.Equal(t, http.StatusUnauthorized, status)
		}
		status, _ := e.loginFrom(t, sprayer, "nobody3", "guess-password")
		require.Equal(t, http.StatusTooManyRequests, status, "unknown users count the same as known ones")
	})
	t.Run("successful logins do not count", func(t *testing.T) {
		for range 10 {
			status, _ := e.loginFrom(t, "192.0.2.77:1", "bob", password)
			require.Equal(t, http.StatusCreated, status)
		}
	})
	t.Run("an IPv6 /64 is one address", func(t *testing.T) {
		for i, a := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::2]:1", "[2001:db8:1:2:ffff::3]:1"} {
			status, _ := e.loginFrom(t, a, "nobody"+string(rune('4'+i)), "guess-password")
			require.Equal(t, http.StatusUnauthorized, status)
		}
		status, _ := e.loginFrom(t, "[2001:db8:1:2::99]:1", "nobody9", "guess-password")
		require.Equal(t, http.StatusTooManyRequests, status)
		status, _ = e.loginFrom(t, "[2001:db8:1:3::1]:1", "nobody9", "guess-password")
		require.Equal(t, http.StatusUnauthorized, status, "the next /64 is another address")
	})
	t.Run("exempt addresses skip the address limit, not the account limit", func(t *testing.T) {
		for _, u := range []string{"ghost1", "ghost2", "ghost3", "ghost4", "ghost5"} {
			status, _ := e.loginFrom(t, "127.0.0.1:9", u, "guess-password")
			require.Equal(t, http.StatusUnauthorized, status)
		}
		for range 3 {
			status, _ := e.loginFrom(t, "127.0.0.1:9", "ghost6", "guess-password")
			require.Equal(t, http.StatusUnauthorized, status)
		}
		status, _ := e.loginFrom(t, "127.0.0.2:9", "ghost6", "guess-password")
		require.Equal(t, http.StatusTooManyRequests, status)
	})
}

// Finding 7: sign-ups are limited per source address, with their own burst.
func TestRegisterThrottle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	e := mustStart(t, nil, withThrottle(api.Throttle{
		RegisterPerAddress: config.RateLimit{Rate: 0.5, Burst: 2}, Now: clk.now}))
	signUp := func(addr, user string) (int, http.Header) {
		status, hdr, body := e.callFrom(t, addr, "POST", "/v1/users",
			`{"username":"`+user+`","password":"`+password+`"}`)
		if status != http.StatusCreated {
			requireError(t, status, body, http.StatusTooManyRequests, "rate_limited")
		}
		return status, hdr
	}
	const a, b = "198.51.100.7:1", "198.51.100.8:1"
	status, _, _ := e.callFrom(t, a, "POST", "/v1/users", `{"username":"BAD"}`)
	require.Equal(t, http.StatusBadRequest, status, "a refused body costs nothing")
	for _, u := range []string{"u1", "u2"} {
		status, _ := signUp(a, u)
		require.Equal(t, http.StatusCreated, status)
	}
	status, hdr := signUp(a, "u3")
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "2", hdr.Get("Retry-After"))
	status, _ = signUp(b, "u3")
	require.Equal(t, http.StatusCreated, status, "another address has its own bucket")
	clk.advance(2 * time.Second)
	status, _ = signUp(a, "u4")
	require.Equal(t, http.StatusCreated, status)
}

// Every REST request counts against its address (auth.requestsPerAddress): past
// the burst, 429 rate_limited with Retry-After; another address is served.
func TestRequestsPerAddress(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	e := mustStart(t, nil, func(o *api.Options) {
		o.Throttle = api.Throttle{RequestsPerAddress: config.RateLimit{Rate: 1, Burst: 5}, Now: clock.now}
	})
	for range 5 {
		status, _, body := e.callFrom(t, "192.0.2.7:4000", "GET", "/v1/users/nobody", "")
		require.Equal(t, http.StatusUnauthorized, status, string(body)) // served (no token)
	}
	status, hdr, body := e.callFrom(t, "192.0.2.7:4001", "GET", "/v1/users/nobody", "")
	requireError(t, status, body, http.StatusTooManyRequests, "rate_limited")
	require.Equal(t, "1", hdr.Get("Retry-After"))
	status, _, body = e.callFrom(t, "192.0.2.7:4002", "POST", "/v1/users", `{}`)
	requireError(t, status, body, http.StatusTooManyRequests, "rate_limited")

	status, _, body = e.callFrom(t, "198.51.100.1:4000", "GET", "/v1/users/nobody", "")
	require.Equal(t, http.StatusUnauthorized, status, "another address is served: %s", body)
	clock.advance(time.Second)
	status, _, body = e.callFrom(t, "192.0.2.7:4003", "GET", "/v1/users/nobody", "")
	require.Equal(t, http.StatusUnauthorized, status, "refilled: %s", body)

	exempt := mustStart(t, nil, func(o *api.Options) {
		o.Throttle = api.Throttle{RequestsPerAddress: config.RateLimit{Rate: 1, Burst: 1},
			Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Now: clock.now}
	})
	for range 3 {
		status, _, _ := exempt.callFrom(t, "127.0.0.1:4000", "GET", "/v1/users/nobody", "")
		require.Equal(t, http.StatusUnauthorized, status, "an exempt address is not limited")
	}
}
