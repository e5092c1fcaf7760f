package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/proto/parleypb"
)

// Throttle configures the limits on logins and sign-ups. A zero RateLimit
// limits nothing, so the zero Throttle is no limit at all.
type Throttle struct {
	LoginPerAddress    config.RateLimit // failed logins per source address
	LoginPerAccount    config.RateLimit // failed logins per username
	RegisterPerAddress config.RateLimit // sign-ups per source address
	RequestsPerAddress config.RateLimit // REST requests (and WebSocket upgrades) per source address
	// Entries is how many keys each limit remembers; 0 means the default of
	// [config.Default].
	Entries int
	// Exempt are the source addresses the per-address limits skip.
	Exempt []netip.Prefix
	// Now is the clock of the buckets; nil means time.Now.
	Now func() time.Time
}

// throttles are the token buckets of a Throttle.
type throttles struct {
	loginAddr, loginAccount, register, requests *auth.Throttle
	exempt                                      []netip.Prefix
}

func newThrottles(t Throttle) throttles {
	if t.Entries <= 0 {
		t.Entries = config.Default().Auth.LimiterEntries
	}
	mk := func(r config.RateLimit) *auth.Throttle { return auth.NewThrottle(r.Rate, r.Burst, t.Entries, t.Now) }
	return throttles{loginAddr: mk(t.LoginPerAddress), loginAccount: mk(t.LoginPerAccount),
		register: mk(t.RegisterPerAddress), requests: mk(t.RequestsPerAddress), exempt: t.Exempt}
}

// rateLimited is a 429 answer; fail sends its Retry-After.
type rateLimited struct {
	error
	retry time.Duration
}

func (e *rateLimited) Unwrap() error { return e.error }

func tooMany(what string, retry time.Duration) error {
	return &rateLimited{error: errorf(parleypb.ErrorReason_RATE_LIMITED, "too many "+what+"; retry later"), retry: retry}
}

// retryAfter is the Retry-After value of d: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// sourceKey is what the per-address limits count r under: its peer's IP
// address, an IPv6 one by its /64 (what one subscriber usually holds); "" when
// the address is exempt.
func (t *throttles) sourceKey(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not an IP peer (tests, unix sockets): the whole string
	}
	addr := ap.Addr().Unmap()
	for _, p := range t.exempt {
		if p.Contains(addr) {
			return ""
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// takeLogin spends a login token of r's address and of username; a rateLimited
// error, spending nothing, when either has none. refund gives both back.
func (t *throttles) takeLogin(r *http.Request, username string) (refund func(), err error) {
	addr := t.sourceKey(r)
	if addr != "" {
		if ok, retry := t.loginAddr.Take(addr); !ok {
			return nil, tooMany("failed logins from this address", retry)
		}
	}
	if ok, retry := t.loginAccount.Take(username); !ok {
		if addr != "" {
			t.loginAddr.Refund(addr)
		}
		return nil, tooMany("failed logins for this account", retry)
	}
	return func() {
		if addr != "" {
			t.loginAddr.Refund(addr)
		}
		t.loginAccount.Refund(username)
	}, nil
}

// takeRegister spends a sign-up token of r's address.
func (t *throttles) takeRegister(r *http.Request) error {
	addr := t.sourceKey(r)
	if addr == "" {
		return nil
	}
	if ok, retry := t.register.Take(addr); !ok {
		return tooMany("sign-ups from this address", retry)
	}
	return nil
}

// takeRequest spends a request token of r's address.
func (t *throttles) takeRequest(r *http.Request) error {
	addr := t.sourceKey(r)
	if addr == "" {
		return nil
	}
	if ok, retry := t.requests.Take(addr); !ok {
		return tooMany("requests from this address", retry)
	}
	return nil
}

// PerAddress limits h by Throttle.RequestsPerAddress, as the API's own routes
// are (429 rate_limited with Retry-After): for the node's other routes, such as
// the WebSocket upgrade.
func (a *API) PerAddress(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.throttles.takeRequest(r); err != nil {
			a.fail(w, r, err)
			return
		}
		h(w, r)
	}
}
