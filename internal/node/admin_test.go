package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/metrics"
)

func adminGet(h http.Handler, path, header string) (int, string) {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = "127.0.0.1:8081" // httptest's example.com is refused without a token (TestAdminRefusesOtherSites)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(body)
}

// Finding 9: with a token, every admin call but /healthz needs it, from the
// Authorization header only.
func TestAdminToken(t *testing.T) {
	// The cluster routes are mounted (a is not nil) but never reached: the token
	// is checked first.
	h := adminMux(config.Admin{Token: "s3cret"}, &admin{}, metrics.New())
	cases := []struct {
		name, path, header string
		status             int
	}{
		{"metrics with the token", "/metrics", "Bearer s3cret", 200},
		{"scheme case", "/metrics", "bearer s3cret", 200},
		{"metrics without", "/metrics", "", 401},
		{"wrong token", "/metrics", "Bearer s3creT", 401},
		{"a prefix of the token", "/metrics", "Bearer s3cre", 401},
		{"longer", "/metrics", "Bearer s3cret2", 401},
		{"token in the query", "/metrics?token=s3cret", "", 401},
		{"token as Basic", "/metrics", "Basic s3cret", 401},
		{"grains without", "/admin/grains", "", 401},
		{"members without", "/admin/members", "", 401},
		{"unknown path without", "/nope", "", 401},
		{"healthz needs no token", "/healthz", "", 200},
		{"the console page needs no token", "/admin/", "", 200},
		{"the console script needs no token", "/admin/console.js", "", 200},
		{"cluster without", "/admin/cluster", "", 401},
		{"users without", "/admin/users/alice", "", 401},
		{"conversations without", "/admin/conversations/dm:a:b", "", 401},
		{"other files under /admin/ without", "/admin/index.html", "", 401},
		{"healthz with a wrong one", "/healthz", "Bearer nope", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := adminGet(h, c.path, c.header)
			require.Equal(t, c.status, status, body)
			if c.status == 401 {
				require.Contains(t, body, `"unauthorized"`)
			}
		})
	}
	_, body := adminGet(h, "/healthz", "")
	require.Equal(t, "ok\n", body)
}

// Finding 9: profiles are served only with admin.pprof, behind the token when
// one is set.
func TestAdminProfiles(t *testing.T) {
	status, _ := adminGet(adminMux(config.Admin{}, nil, nil), "/debug/pprof/goroutine?debug=1", "")
	require.Equal(t, http.StatusNotFound, status, "pprof is off by default")
	status, _ = adminGet(adminMux(config.Admin{Token: "s3cret"}, nil, nil), "/debug/pprof/heap", "Bearer s3cret")
	require.Equal(t, http.StatusNotFound, status)
	require.False(t, config.Default().Admin.Pprof)

	guarded := adminMux(config.Admin{Token: "s3cret", Pprof: true}, nil, nil)
	status, _ = adminGet(guarded, "/debug/pprof/heap", "")
	require.Equal(t, http.StatusUnauthorized, status, "heap profile without the admin token")
	status, body := adminGet(guarded, "/debug/pprof/heap", "Bearer s3cret")
	require.Equal(t, http.StatusOK, status)
	require.True(t, strings.HasPrefix(body, "\x1f\x8b"), "a gzipped profile: %.20q", body)

	open := adminMux(config.Admin{Pprof: true}, nil, nil)
	status, body = adminGet(open, "/debug/pprof/goroutine?debug=1", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine profile:")
	status, _ = adminGet(open, "/debug/pprof/", "")
	require.Equal(t, http.StatusOK, status)
}

// The console is static: its page loads its own script and style only (no inline
// script, no frames), and holds no data.
func TestAdminConsole(t *testing.T) {
	h := adminMux(config.Admin{Token: "s3cret"}, nil, nil)
	r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Header().Get("Content-Type"), "text/html")
	require.Contains(t, w.Header().Get("Content-Security-Policy"), "default-src 'self'")
	require.Contains(t, w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'")
	body := w.Body.String()
	require.Contains(t, body, `src="console.js"`)
	require.NotContains(t, body, "<script>", "no inline script")
	status, js := adminGet(h, "/admin/console.js", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, js, "Authorization", "the script sends the token in the header")
	require.NotContains(t, js, "?token=", "never in a URL")
}

// Without a token (loopback only), a request whose Host is a name other than
// localhost is refused (DNS rebinding), and with or without one a POST a browser
// marks as cross-site is refused (a page the operator has open).
func TestAdminRefusesOtherSites(t *testing.T) {
	open := adminMux(config.Admin{}, &admin{}, metrics.New())
	do := func(h http.Handler, method, path, host string, header ...string) int {
		r := httptest.NewRequest(method, path, nil)
		r.Host = host
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, host := range []string{"127.0.0.1:8081", "localhost:8081", "[::1]:8081", "127.0.0.1"} {
		require.Equal(t, http.StatusOK, do(open, http.MethodGet, "/metrics", host), host)
	}
	for _, host := range []string{"evil.example:8081", "evil.example", "127.0.0.1.nip.io:8081"} {
		require.Equal(t, http.StatusForbidden, do(open, http.MethodGet, "/metrics", host), host)
	}
	require.Equal(t, http.StatusOK, do(open, http.MethodGet, "/healthz", "evil.example"), "healthz holds nothing")

	guarded := adminMux(config.Admin{Token: "s3cret"}, &admin{}, metrics.New())
	require.Equal(t, http.StatusOK, do(guarded, http.MethodGet, "/metrics", "admin.internal:8081", "Authorization", "Bearer s3cret"),
		"with a token, any host name")
	for _, h := range []http.Handler{open, guarded} {
		for _, hdr := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "http://evil.example"},
			{"Origin", "null"},
		} {
			code := do(h, http.MethodPost, "/admin/users/alice/disconnect", "127.0.0.1:8081",
				append(hdr, "Authorization", "Bearer s3cret")...)
			require.Equal(t, http.StatusForbidden, code, "%v", hdr)
		}
	}
}
