package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
)

const adminToken = "admin-test-token-1234567890"

// adminCall calls a node's admin endpoint with token ("": none) and returns the
// status and body.
func adminCall(t *testing.T, n *testenv.Node, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testenv.Context(t, 20*time.Second), method, n.AdminURL+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, body
}

// adminJSON calls the admin endpoint with the token, requires 200 and decodes
// the answer into out.
func adminJSON(t *testing.T, n *testenv.Node, method, path string, out any) {
	t.Helper()
	status, body := adminCall(t, n, method, path, adminToken)
	require.Equal(t, http.StatusOK, status, "%s %s: %s", method, path, body)
	require.NoError(t, json.Unmarshal(body, out), "%s", body)
}

type adminMember struct {
	ID          string         `json:"id"`
	Address     string         `json:"address"`
	Status      string         `json:"status"`
	Self        bool           `json:"self"`
	NodeID      int            `json:"nodeId"`
	HTTP        string         `json:"http"`
	Admin       string         `json:"admin"`
	Uptime      int64          `json:"uptimeSeconds"`
	Version     string         `json:"version"`
	Grains      map[string]int `json:"grains"`
	Connections int            `json:"connections"`
}

type adminWhere struct {
	Active      bool       `json:"active"`
	Member      string     `json:"member"`
	NodeID      int        `json:"nodeId"`
	ActivatedAt *time.Time `json:"activatedAt"`
	Mailbox     *int       `json:"mailbox"`
	Unreachable []string   `json:"unreachable"`
}

type adminUser struct {
	User string `json:"user"`
	adminWhere
	QueueHead uint64 `json:"queueHead"`
	Devices   []struct {
		Device string `json:"device"`
		Cursor uint64 `json:"cursor"`
	} `json:"devices"`
	Connections []struct {
		Device   string    `json:"device"`
		Member   string    `json:"member"`
		NodeID   int       `json:"nodeId"`
		Address  string    `json:"address"`
		Since    time.Time `json:"since"`
		Attached bool      `json:"attached"`
	} `json:"connections"`
	Presence struct {
		Status string `json:"status"`
	} `json:"presence"`
	Contacts      int `json:"contacts"`
	PendingPushes int `json:"pendingPushes"`
}

type adminConversation struct {
	Conversation string `json:"conversation"`
	Type         string `json:"type"`
	adminWhere
	LastMessageID string `json:"lastMessageId"`
	Version       uint64 `json:"version"`
	MemberCount   int    `json:"memberCount"`
	Members       []struct {
		User      string `json:"user"`
		Delivered string `json:"delivered"`
		Read      string `json:"read"`
		Backlog   int    `json:"backlog"`
	} `json:"members"`
	Receipts *struct {
		DeliveredToAll string `json:"deliveredToAll"`
		ReadByAll      string `json:"readByAll"`
	} `json:"receipts"`
}

// clusterGrains lists the grains active anywhere in the cluster, as "Kind/id".
func clusterGrains(t *testing.T, n *testenv.Node) []string {
	t.Helper()
	var body struct {
		Grains []struct {
			Grain string `json:"grain"`
		} `json:"grains"`
		Unreachable []string `json:"unreachable"`
	}
	adminJSON(t, n, http.MethodGet, "/admin/grains?limit=10000", &body)
	require.Empty(t, body.Unreachable)
	out := make([]string, len(body.Grains))
	for i, g := range body.Grains {
		out[i] = g.Grain
	}
	return out
}

// Issue 14, acceptance 1: on a 3-node cluster the admin calls return the
// documented JSON for a live user and group, with the node holding each
// connection; an inactive grain is answered from the store and not activated;
// no token or a wrong one is refused; disconnect closes every device of the user
// and no one else's.
func TestAdminCluster(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 0, 3)
	for range 3 {
		c.Add("PARLEY_ADMIN_TOKEN=" + adminToken)
	}
	nodes := c.Nodes
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for i, n := range nodes {
			var body struct {
				Members []adminMember `json:"members"`
			}
			adminJSON(t, n, http.MethodGet, "/admin/cluster", &body)
			up := 0
			for _, m := range body.Members {
				if m.Status == "up" {
					up++
				}
			}
			if up != 3 {
				return fmt.Errorf("node %d: %d members up of %d", i, up, len(body.Members))
			}
		}
		return nil
	})

	t.Run("token", func(t *testing.T) {
		for _, path := range []string{"/admin/cluster", "/admin/grains", "/admin/users/x", "/admin/conversations/dm:a:b"} {
			for _, tok := range []string{"", "wrong", adminToken + "x"} {
				status, body := adminCall(t, nodes[0], http.MethodGet, path, tok)
				require.Equal(t, http.StatusUnauthorized, status, "%s with %q: %s", path, tok, body)
				require.Contains(t, string(body), `"unauthorized"`)
			}
		}
		status, _ := adminCall(t, nodes[0], http.MethodPost, "/admin/users/x/disconnect", "")
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = adminCall(t, nodes[0], http.MethodPost, "/admin/grains/user/x/passivate", "nope")
		require.Equal(t, http.StatusUnauthorized, status)
	})

	// alice has a device on node 0 and one on node 1; bob is on node 2; carol is
	// in the group and never connects; dave only logs in.
	alice := newUser(t, nodes[0], "alice")
	alice2 := device(t, nodes[1], alice, "")
	bob := newUser(t, nodes[2], "bob")
	carol := newUser(t, nodes[0], "carol")
	dave := newUser(t, nodes[1], "dave")
	a1, a2, b := dial(t, nodes[0], alice), dial(t, nodes[1], alice2), dial(t, nodes[2], bob)
	rs := syncedReaders(t, a1, a2, b)
	ra1, ra2, rb := rs[0], rs[1], rs[2]
	group := createGroup(t, nodes[0], alice, []client.Session{bob, carol})
	require.NoError(t, a1.Write(sendFrame("d1", bob.UserID, "hi bob")))
	require.NoError(t, a1.Write(groupSend("g1", group, "hi team")))
	require.NoError(t, a1.Write(groupSend("g2", group, "still there?")))
	ra1.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["d1"] != nil && r.sent["g2"] != nil })
	rb.waitFor(t, 10*time.Second, "bob's three", func(r *reader) bool { return len(r.messages) == 3 })

	nodeOf := map[string]int{} // member id -> index in nodes
	t.Run("cluster", func(t *testing.T) {
		var body struct {
			Cluster string        `json:"cluster"`
			Self    string        `json:"self"`
			Members []adminMember `json:"members"`
		}
		adminJSON(t, nodes[1], http.MethodGet, "/admin/cluster", &body)
		require.Len(t, body.Members, 3)
		conns, ids, selves := 0, map[int]bool{}, 0
		for _, m := range body.Members {
			i := slices.IndexFunc(nodes, func(n *testenv.Node) bool { return n.URL == "http://"+m.HTTP })
			require.GreaterOrEqual(t, i, 0, "member %s serves %s, no node of the test", m.ID, m.HTTP)
			nodeOf[m.ID] = i
			require.Equal(t, nodes[i].AdminURL, "http://"+m.Admin)
			require.Equal(t, "up", m.Status)
			require.NotEmpty(t, m.Version)
			require.NotEmpty(t, m.Address)
			require.Contains(t, m.Grains, "user")
			require.Contains(t, m.Grains, "conversation")
			ids[m.NodeID] = true
			conns += m.Connections
			if m.Self {
				selves++
				require.Equal(t, body.Self, m.ID)
				require.Equal(t, 1, i, "self is the node asked")
			}
		}
		require.Len(t, ids, 3, "three distinct node ids")
		require.Equal(t, 1, selves)
		require.Equal(t, 3, conns, "alice's two sockets and bob's")
	})

	t.Run("user", func(t *testing.T) {
		var u adminUser
		adminJSON(t, nodes[2], http.MethodGet, "/admin/users/"+alice.UserID, &u)
		require.Equal(t, alice.UserID, u.User)
		require.True(t, u.Active)
		require.Contains(t, nodeOf, u.Member)
		require.NotNil(t, u.ActivatedAt)
		require.NotNil(t, u.Mailbox)
		require.Equal(t, "online", u.Presence.Status)
		require.GreaterOrEqual(t, u.QueueHead, uint64(3), "her own three messages are in her queue")
		require.Len(t, u.Devices, 2)
		require.Len(t, u.Connections, 2)
		where := map[string]int{}
		for _, cn := range u.Connections {
			where[cn.Device] = nodeOf[cn.Member]
			require.True(t, cn.Attached, "the grain counts %s", cn.Device)
			require.False(t, cn.Since.IsZero())
		}
		require.Equal(t, map[string]int{alice.DeviceID: 0, alice2.DeviceID: 1}, where, "the node holding each connection")
	})

	t.Run("group", func(t *testing.T) {
		conv := convid.GroupID(group)
		var g adminConversation
		adminJSON(t, nodes[1], http.MethodGet, "/admin/conversations/"+conv, &g)
		require.Equal(t, conv, g.Conversation)
		require.Equal(t, "group", g.Type)
		require.True(t, g.Active)
		require.Equal(t, 3, g.MemberCount)
		ra1.mu.Lock()
		last := ra1.sent["g2"].MessageId
		ra1.mu.Unlock()
		require.Equal(t, fmt.Sprint(last), g.LastMessageID)
		require.NotZero(t, g.Version)
		backlog := map[string]int{}
		for _, m := range g.Members {
			backlog[m.User] = m.Backlog
		}
		require.Len(t, backlog, 3)
		require.Equal(t, 2, backlog[carol.UserID], "carol has neither group message on a device")
		require.NotNil(t, g.Receipts)
		ra1.mu.Lock()
		first := ra1.sent["g1"].MessageId
		ra1.mu.Unlock()
		var all int64
		_, err := fmt.Sscan(g.Receipts.DeliveredToAll, &all)
		require.NoError(t, err)
		require.Less(t, all, first, "carol has none of the group's messages")
	})

	t.Run("inactive", func(t *testing.T) {
		// dave never connected: no node holds his grain, and looking does not
		// activate it.
		var u adminUser
		adminJSON(t, nodes[0], http.MethodGet, "/admin/users/"+dave.UserID, &u)
		require.False(t, u.Active)
		require.Empty(t, u.Member)
		require.Len(t, u.Devices, 1)
		require.Empty(t, u.Connections)
		require.Equal(t, "offline", u.Presence.Status)
		require.NotContains(t, clusterGrains(t, nodes[0]), "User/"+dave.UserID)

		// The 1:1 conversation is passivated, then shown from the store.
		dm := convid.DirectID(alice.UserID, bob.UserID)
		require.Contains(t, clusterGrains(t, nodes[0]), "Conversation/"+dm)
		var p struct {
			Passivated bool `json:"passivated"`
		}
		adminJSON(t, nodes[2], http.MethodPost, "/admin/grains/conversation/"+dm+"/passivate", &p)
		require.True(t, p.Passivated)
		testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if slices.Contains(clusterGrains(t, nodes[0]), "Conversation/"+dm) {
				return fmt.Errorf("%s still active", dm)
			}
			return nil
		})
		var d adminConversation
		adminJSON(t, nodes[0], http.MethodGet, "/admin/conversations/"+dm, &d)
		require.False(t, d.Active)
		require.Equal(t, "dm", d.Type)
		ra1.mu.Lock()
		last := ra1.sent["d1"].MessageId
		ra1.mu.Unlock()
		require.Equal(t, fmt.Sprint(last), d.LastMessageID)
		require.Equal(t, 2, d.MemberCount)
		require.NotContains(t, clusterGrains(t, nodes[0]), "Conversation/"+dm, "looking did not activate it")

		status, body := adminCall(t, nodes[0], http.MethodGet, "/admin/users/nobody-"+testenv.Name("x"), adminToken)
		require.Equal(t, http.StatusNotFound, status, "%s", body)
		status, body = adminCall(t, nodes[0], http.MethodGet, "/admin/conversations/"+convid.GroupID(convid.NewGroupID()), adminToken)
		require.Equal(t, http.StatusNotFound, status, "%s", body)
		status, _ = adminCall(t, nodes[0], http.MethodGet, "/admin/conversations/nonsense", adminToken)
		require.Equal(t, http.StatusBadRequest, status)
		status, _ = adminCall(t, nodes[0], http.MethodGet, "/admin/grains?kind=nope", adminToken)
		require.Equal(t, http.StatusBadRequest, status)
		for _, q := range []string{"limit=0", "limit=10001", "limit=x"} {
			status, _ = adminCall(t, nodes[0], http.MethodGet, "/admin/grains?"+q, adminToken)
			require.Equal(t, http.StatusBadRequest, status, q)
		}
		status, _ = adminCall(t, nodes[0], http.MethodPost, "/admin/users/nobody-"+testenv.Name("x")+"/disconnect", adminToken)
		require.Equal(t, http.StatusNotFound, status, "disconnect of no user")
		status, _ = adminCall(t, nodes[0], http.MethodPost, "/admin/grains/nokind/x/passivate", adminToken)
		require.Equal(t, http.StatusBadRequest, status)
	})

	t.Run("disconnect", func(t *testing.T) {
		var out struct {
			Closed int `json:"closed"`
		}
		adminJSON(t, nodes[2], http.MethodPost, "/admin/users/"+alice.UserID+"/disconnect", &out)
		require.Equal(t, 2, out.Closed)
		for i, r := range []*reader{ra1, ra2} {
			select {
			case <-r.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("alice's connection %d is still open", i)
			}
			require.True(t, client.IsClose(r.err, wire.CloseDisconnected), "connection %d ended with %v", i, r.err)
		}
		// bob's connection is untouched: it still answers.
		require.NoError(t, b.Write(sendFrame("after", alice.UserID, "you there?")))
		rb.waitFor(t, 10*time.Second, "bob's send after the disconnect", func(r *reader) bool { return r.sent["after"] != nil })
		var u adminUser
		testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			adminJSON(t, nodes[0], http.MethodGet, "/admin/users/"+alice.UserID, &u)
			if len(u.Connections) != 0 {
				return fmt.Errorf("alice still has %d connections", len(u.Connections))
			}
			return nil
		})
		require.False(t, strings.Contains(fmt.Sprint(u.Connections), alice.DeviceID))
	})
}
