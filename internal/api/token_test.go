package api_test

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
)

// Finding 12: only the WebSocket upgrade reads ?token=, and only without an
// Authorization header.
func TestTokenSources(t *testing.T) {
	cases := []struct {
		name, url, header string
		bearer, upgrade   string
	}{
		{"header", "/x", "Bearer abc", "abc", "abc"},
		{"scheme case", "/x", "bEaReR abc", "abc", "abc"},
		{"query only", "/x?token=q", "", "", "q"},
		{"header wins", "/x?token=q", "Bearer abc", "abc", "abc"},
		{"other scheme, no fallback", "/x?token=q", "Basic dXNlcjpwdw==", "", ""},
		{"nothing", "/x", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.url, nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			require.Equal(t, c.bearer, api.BearerToken(r))
			require.Equal(t, c.upgrade, api.UpgradeToken(r))
		})
	}
}
