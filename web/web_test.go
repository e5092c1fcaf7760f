package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.Host = "chat.example:8080"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

func TestFilesHaveTheirTypesAndHeaders(t *testing.T) {
	for path, ctype := range map[string]string{
		"/":                     "text/html; charset=utf-8",
		"/index.html":           "text/html; charset=utf-8",
		"/app.js":               "text/javascript; charset=utf-8",
		"/sw.js":                "text/javascript; charset=utf-8",
		"/style.css":            "text/css; charset=utf-8",
		"/icon.svg":             "image/svg+xml",
		"/manifest.webmanifest": "application/manifest+json",
	} {
		t.Run(path, func(t *testing.T) {
			w := serve(t, http.MethodGet, path)
			require.Equal(t, http.StatusOK, w.Code)
			require.Equal(t, ctype, w.Header().Get("Content-Type"))
			require.NotEmpty(t, w.Body.Bytes())
			csp := w.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
				"connect-src 'self' ws://chat.example:8080 wss://chat.example:8080", "object-src 'none'",
				"require-trusted-types-for 'script'"} {
				require.Contains(t, csp, want)
			}
			require.NotContains(t, csp, "unsafe")
			require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
			require.Equal(t, "no-referrer", w.Header().Get("Referrer-Policy"))
			require.Equal(t, "no-cache", w.Header().Get("Cache-Control"))
		})
	}
}

func TestUnknownPathsAreJSON404s(t *testing.T) {
	for _, path := range []string{"/nope", "/static/app.js", "/app.js/", "/web.go", "/.."} {
		w := serve(t, http.MethodGet, path)
		require.Equal(t, http.StatusNotFound, w.Code, path)
		require.Equal(t, "application/json", w.Header().Get("Content-Type"), path)
		var body struct{ Error struct{ Code string } }
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), path)
		require.Equal(t, "not_found", body.Error.Code, path)
		require.NotEmpty(t, w.Header().Get("Content-Security-Policy"), path)
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	w := serve(t, http.MethodPost, "/app.js")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
	w = serve(t, http.MethodHead, "/app.js")
	require.Equal(t, http.StatusOK, w.Code)
	require.Empty(t, w.Body.Bytes())
}

func TestRevalidationAnswers304(t *testing.T) {
	etag := serve(t, http.MethodGet, "/style.css").Header().Get("ETag")
	require.NotEmpty(t, etag)
	w := serve(t, http.MethodGet, "/style.css", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, w.Code)
}

func TestAnOddHostIsNotPutInTheCSP(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "evil.example; script-src *"
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	csp := w.Header().Get("Content-Security-Policy")
	require.Contains(t, csp, "connect-src 'self';")
	require.False(t, strings.Contains(csp, "evil"))
}

// No file of the client may write HTML from strings: user text goes through
// textContent (and the CSP's Trusted Types would throw anyway).
func TestNoHTMLSinksInTheScripts(t *testing.T) {
	entries, err := static.ReadDir("static")
	require.NoError(t, err)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := static.ReadFile("static/" + e.Name())
		require.NoError(t, err)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			require.False(t, strings.Contains(string(b), sink), "%s uses %s", e.Name(), sink)
		}
	}
}
