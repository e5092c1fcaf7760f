package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The admin endpoint serves Go's profiles, behind the admin token when one is set.
func TestAdminProfiles(t *testing.T) {
	get := func(h http.Handler, path, token string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body, _ := io.ReadAll(w.Result().Body)
		return w.Code, string(body)
	}

	guarded := adminMux("s3cret", nil, nil)
	if code, _ := get(guarded, "/debug/pprof/heap", ""); code != http.StatusUnauthorized {
		t.Fatalf("heap profile without the admin token: %d, want 401", code)
	}
	code, body := get(guarded, "/debug/pprof/heap", "s3cret")
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("heap profile with the token: %d, %.20q; want 200 and a gzipped profile", code, body)
	}

	open := adminMux("", nil, nil)
	code, body = get(open, "/debug/pprof/goroutine?debug=1", "")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile: %d, %.60q", code, body)
	}
	if code, _ := get(open, "/debug/pprof/", ""); code != http.StatusOK {
		t.Fatalf("profile index: %d", code)
	}
}
