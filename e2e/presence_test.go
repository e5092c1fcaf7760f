package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
)

type userBody struct {
	User struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		LastSeen int64  `json:"lastSeen"`
	} `json:"user"`
}

// Issue 11, acceptance 2: a device that stops sending and reading without closing
// (no close frame, no FIN) is closed with 1001 after presence.deadAfter, and bob
// turns offline with a lastSeen of when his device went quiet, not of when the
// node noticed.
func TestDeadSocketGoesOffline(t *testing.T) {
	const deadAfter = 800 * time.Millisecond
	n := startNode(t, fastConfig+"presence:\n  deadAfter: 800ms\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil) // bob's last frame
	quiet := time.Now()

	var st userBody
	require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, &st))
	require.Equal(t, "online", st.User.Status)

	select {
	case <-br.done:
	case <-time.After(10 * deadAfter):
		t.Fatal("a silent socket stayed open")
	}
	closed := time.Now()
	require.True(t, client.IsClose(br.err, wire.CloseGoingAway), "closed with %v", br.err)
	require.GreaterOrEqual(t, closed.Sub(quiet), deadAfter, "closed before deadAfter")

	deadline := time.Now().Add(10 * time.Second)
	for {
		require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, &st))
		if st.User.Status == "offline" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, "offline", st.User.Status)
	seen := time.UnixMilli(st.User.LastSeen)
	require.WithinDuration(t, quiet, seen, 300*time.Millisecond, "lastSeen is when bob went quiet")
	require.Less(t, seen, closed.Add(-deadAfter/2), "lastSeen is not when the sweep noticed")
}
