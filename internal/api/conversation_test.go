package api_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
)

func TestDirectConversation(t *testing.T) {
	require.Equal(t, "dm:alice:bob", api.DirectConversation("alice", "bob"))
	require.Equal(t, "dm:alice:bob", api.DirectConversation("bob", "alice"))
	require.Equal(t, "dm:a.b:a_b", api.DirectConversation("a_b", "a.b"), "byte order")
}

func TestParseConversation(t *testing.T) {
	cases := []struct {
		id, kind string
		members  []string
		ok       bool
	}{
		{"dm:alice:bob", "dm", []string{"alice", "bob"}, true},
		{"dm:a.b:a_b", "dm", []string{"a.b", "a_b"}, true},
		{"group:g123", "group", nil, true},
		{"dm:bob:alice", "", nil, false},
		{"dm:alice:alice", "", nil, false},
		{"dm:alice", "", nil, false},
		{"dm:alice:bob:carol", "", nil, false},
		{"dm:Alice:bob", "", nil, false},
		{"dm::bob", "", nil, false},
		{"group:", "", nil, false},
		{"group:a:b", "", nil, false},
		{"group:a b", "", nil, false},
		{"group:" + strings.Repeat("g", 65), "", nil, false},
		{"chan:x", "", nil, false},
		{"", "", nil, false},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			kind, members, err := api.ParseConversation(c.id)
			if !c.ok {
				require.ErrorIs(t, err, api.ErrBadConversation)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.kind, kind)
			require.Equal(t, c.members, members)
		})
	}
	for _, pair := range [][2]string{{"x", "y"}, {"zed", "amy"}} {
		kind, members, err := api.ParseConversation(api.DirectConversation(pair[0], pair[1]))
		require.NoError(t, err)
		require.Equal(t, api.KindDirect, kind)
		require.ElementsMatch(t, pair[:], members)
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct{ name, header, target, want string }{
		{"header", "Bearer abc", "/", "abc"},
		{"scheme case", "bearer abc", "/", "abc"},
		{"query", "", "/?token=xyz", "xyz"},
		{"header wins", "Bearer abc", "/?token=xyz", "abc"},
		{"other scheme", "Basic abc", "/?token=xyz", ""},
		{"none", "", "/", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.target, nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			require.Equal(t, c.want, api.BearerToken(r))
		})
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	api.WriteError(w, 429, "rate_limited", "slow down <now>")
	require.Equal(t, 429, w.Code)
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.JSONEq(t, `{"error":{"code":"rate_limited","message":"slow down <now>"}}`, w.Body.String())
}
