package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// Security review, finding 1: an id that names nothing (a group never created, a
// user who is no account) activates no grain, whether it comes in a send, a typing
// notice or a history request over the WebSocket, or in a REST group or history
// call; the caller gets not_found (typing: nothing), and real ids still work.
func TestUnknownIDsActivateNoGrain(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	grains := func() float64 {
		t.Helper()
		f := scrape(t, n)
		return value(f, "parley_grains_active", "kind", "Conversation") + value(f, "parley_grains_active", "kind", "User")
	}
	before := grains()

	const probes = 20
	for i := range probes {
		// A fresh id for each probe: nothing one activates may be reused by the next.
		ghost := func() string { return fmt.Sprintf("ghost-%d", time.Now().UnixNano()) }
		group := convid.NewGroupID
		frames := []*parleypb.ClientFrame{
			sendFrame(fmt.Sprint("dm-", i), ghost(), "hello?"),
			groupSend(fmt.Sprint("group-", i), group(), "hello?"),
			{Body: &parleypb.ClientFrame_Typing{Typing: &parleypb.Typing{To: ghost()}}},
			{Body: &parleypb.ClientFrame_Typing{Typing: &parleypb.Typing{Group: group()}}},
			{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{Id: fmt.Sprint("h-", i), Conversation: convid.GroupID(group())}}},
		}
		_, _, errsBefore, _ := ar.snapshot()
		for _, f := range frames {
			require.NoError(t, ac.Write(f))
		}
		ar.waitFor(t, 10*time.Second, "three not_found", func(r *reader) bool { return len(r.errors) >= len(errsBefore)+3 })
		_, _, errs, _ := ar.snapshot()
		for _, e := range errs[len(errsBefore):] {
			require.Equal(t, "not_found", e.Code, "%s: %s", e.Id, e.Message)
		}
		require.Equal(t, "not_found", apiCode(groupAPI(t, n, alice, http.MethodGet, "/v1/groups/"+group(), nil, nil)))
		require.Equal(t, "not_found", apiCode(groupAPI(t, n, alice, http.MethodPost, "/v1/groups/"+group()+"/members",
			map[string]any{"user": bob.UserID}, nil)))
		require.Equal(t, "not_found", apiCode(groupAPI(t, n, alice, http.MethodGet,
			"/v1/conversations/"+convid.GroupID(group())+"/messages", nil, nil)))
		require.Equal(t, "not_found", apiCode(groupAPI(t, n, alice, http.MethodPost, "/v1/groups",
			map[string]any{"name": "team", "members": []string{bob.UserID, ghost()}}, nil)), "a create refused")
	}
	syncNow(t, ac, ar, nil) // after every frame above was handled
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, before, grains(), "grains active after %d probes of each kind", probes)

	// What exists still works: a DM to bob, and a group with him.
	require.NoError(t, ac.Write(sendFrame("real", bob.UserID, "hi bob")))
	ar.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["real"] != nil })
	group := createGroup(t, n, alice, []client.Session{bob})
	require.NoError(t, ac.Write(groupSend("real-group", group, "hi all")))
	ar.waitFor(t, 10*time.Second, "sent to the group", func(r *reader) bool { return r.sent["real-group"] != nil })
	require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/groups/"+group, nil, nil))
}
