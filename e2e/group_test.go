package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/node"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

// groupAPI calls the REST group endpoints as a user.
func groupAPI(t *testing.T, n *testenv.Node, s client.Session, method, path string, body any, out any) error {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		rd = strings.NewReader(mustJSON(t, body))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequestWithContext(testenv.Context(t, 30*time.Second), method, n.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	return client.Do(req, out)
}

type groupBody struct {
	Group struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Owner   string   `json:"owner"`
		Members []string `json:"members"`
	} `json:"group"`
}

func createGroup(t *testing.T, n *testenv.Node, owner client.Session, members []client.Session) string {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	var g groupBody
	require.NoError(t, groupAPI(t, n, owner, http.MethodPost, "/v1/groups", map[string]any{"name": "team", "members": ids}, &g))
	require.Equal(t, owner.UserID, g.Group.Owner)
	require.Len(t, g.Group.Members, len(members)+1)
	return g.Group.ID
}

func groupSend(id, group, text string) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, Group: group, Text: text}}}
}

func apiCode(err error) string {
	if e, ok := err.(*client.APIError); ok {
		return e.Code
	}
	return fmt.Sprint(err)
}

// Issue 4, acceptance 1: a 50-member group, 10 members sending 100 messages each at
// once: every member, online ones live and offline ones after sync, ends with the
// same 1,000 messages in the same order.
func TestGroupOrderForEveryMember(t *testing.T) {
	n := startNode(t, fastConfig)
	users := make([]client.Session, 50)
	for i := range users {
		users[i] = newUser(t, n, fmt.Sprintf("g%02d", i))
	}
	group := createGroup(t, n, users[0], users[1:])

	const online, senders, each = 25, 10, 100
	conns := make([]*client.Conn, online)
	readers := make([]*reader, online)
	for i := range online {
		conns[i] = dial(t, n, users[i])
		readers[i] = startReader(conns[i])
		syncNow(t, conns[i], readers[i], nil)
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				require.NoError(t, conns[s].Write(groupSend(fmt.Sprintf("s%d-%d", s, k), group, fmt.Sprint(s, ":", k))))
			}
		}()
	}
	wg.Wait()
	var want []int64
	check := func(who string, r *reader) {
		r.waitFor(t, 120*time.Second, who+": 1000 messages", func(r *reader) bool { return len(r.messages) >= senders*each })
		time.Sleep(100 * time.Millisecond)
		msgs, _, errs, _ := r.snapshot()
		require.Empty(t, errs, who)
		require.Len(t, msgs, senders*each, who)
		ids := requireStream(t, msgs, 1)
		require.True(t, sorted(ids), who)
		if want == nil {
			want = ids
		}
		require.Equal(t, want, ids, "%s sees the group's one order", who)
	}
	for i, r := range readers {
		check(fmt.Sprint("online member ", i), r)
		if i < senders {
			r.waitFor(t, 60*time.Second, "sent", func(r *reader) bool { return len(r.sent) == each })
		}
	}
	for i := online; i < len(users); i++ { // offline members catch up by sync
		conn := dial(t, n, users[i])
		r := startReader(conn)
		syncAll(t, conn, r) // 1,000 entries take two pages of limits.syncBatch (500)
		check(fmt.Sprint("offline member ", i), r)
		_ = conn.Close()
	}
}

// Issue 4, acceptance 2: a 500-member group: one message reaches all 500 sync
// queues; a 501st member is refused.
func TestGroupOf500(t *testing.T) {
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, fastConfig)
	users := make([]client.Session, 501)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() { // bounded: 501 registrations over loopback
			defer wg.Done()
			users[i] = newUser(t, n, fmt.Sprintf("m%03d", i))
		}()
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	group := createGroup(t, n, users[0], users[1:500])

	err := groupAPI(t, n, users[0], http.MethodPost, "/v1/groups/"+group+"/members", map[string]string{"user": users[500].UserID}, nil)
	require.Equal(t, "bad_request", apiCode(err), "the 501st member is refused")
	tooBig := make([]string, 500)
	for i := range tooBig {
		tooBig[i] = users[i+1].UserID
	}
	err = groupAPI(t, n, users[0], http.MethodPost, "/v1/groups", map[string]any{"name": "big", "members": tooBig}, nil)
	require.Equal(t, "bad_request", apiCode(err), "a group created with 501 members is refused")

	conn := dial(t, n, users[0])
	r := startReader(conn)
	require.NoError(t, conn.Write(groupSend("hello", group, "hello, 500")))
	r.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return r.sent["hello"] != nil })
	id := r.sent["hello"].MessageId

	ctx := testenv.Context(t, 60*time.Second)
	pg, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer pg.Close(ctx)
	// sent means committed, and the commit wrote the message into every member's queue.
	var queues int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(DISTINCT user_id) FROM queue_ranges
		WHERE conversation = $1 AND $2 BETWEEN first_id AND last_id`, "group:"+group, id).Scan(&queues))
	require.Equal(t, 500, queues, "in every member's queue once sent is answered")
	var outsider int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM queue_ranges WHERE user_id = $1`, users[500].UserID).Scan(&outsider))
	require.Zero(t, outsider)
}

// Issue 4, acceptance 3: a non-member cannot send, read history or see the members;
// a removed member gets nothing sent after removal; a member who joins late cannot
// read earlier history.
func TestGroupAuthorization(t *testing.T) {
	n := startNode(t, fastConfig)
	owner, member, outsider, late := newUser(t, n, "own"), newUser(t, n, "mem"), newUser(t, n, "out"), newUser(t, n, "late")
	group := createGroup(t, n, owner, []client.Session{member})

	oc := dial(t, n, owner)
	or := startReader(oc)
	mc := dial(t, n, member)
	mr := startReader(mc)
	syncNow(t, mc, mr, nil)
	require.NoError(t, oc.Write(groupSend("early", group, "before the late one joins")))
	or.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["early"] != nil })

	// The outsider: no send, no history, no members (REST and WebSocket).
	xc := dial(t, n, outsider)
	xr := startReader(xc)
	require.NoError(t, xc.Write(groupSend("x1", group, "let me in")))
	require.NoError(t, xc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
		Id: "h1", Conversation: "group:" + group}}}))
	xr.waitFor(t, 10*time.Second, "two errors", func(r *reader) bool { return len(r.errors) == 2 })
	for _, e := range xr.errors {
		require.Equal(t, "forbidden", e.Code, e.Message)
	}
	require.Equal(t, "forbidden", apiCode(groupAPI(t, n, outsider, http.MethodGet, "/v1/groups/"+group, nil, nil)))
	require.Equal(t, "forbidden", apiCode(groupAPI(t, n, outsider, http.MethodGet, "/v1/conversations/group:"+group+"/messages", nil, nil)))
	require.Equal(t, "forbidden", apiCode(groupAPI(t, n, member, http.MethodPost, "/v1/groups/"+group+"/members",
		map[string]string{"user": outsider.UserID}, nil)), "only the owner adds")

	// The late joiner sees only what follows the join.
	require.NoError(t, groupAPI(t, n, owner, http.MethodPost, "/v1/groups/"+group+"/members", map[string]string{"user": late.UserID}, nil))
	require.NoError(t, oc.Write(groupSend("after-join", group, "welcome")))
	or.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["after-join"] != nil })
	var page struct {
		Messages []struct {
			ClientID string `json:"clientId"`
		} `json:"messages"`
	}
	require.NoError(t, groupAPI(t, n, late, http.MethodGet, "/v1/conversations/group:"+group+"/messages", nil, &page))
	require.Len(t, page.Messages, 1)
	require.Equal(t, "after-join", page.Messages[0].ClientID)
	lc := dial(t, n, late)
	lr := startReader(lc)
	syncNow(t, lc, lr, nil)
	lr.waitFor(t, 10*time.Second, "the message after the join", func(r *reader) bool { return len(r.messages) >= 1 })
	msgs, _, _, _ := lr.snapshot()
	require.Len(t, msgs, 1)
	require.Equal(t, "after-join", msgs[0].ClientId)

	// The member leaves (removing oneself); then gets nothing, and reads nothing.
	mr.waitFor(t, 10*time.Second, "two messages", func(r *reader) bool { return len(r.messages) == 2 })
	require.NoError(t, groupAPI(t, n, member, http.MethodDelete, "/v1/groups/"+group+"/members/"+member.UserID, nil, nil))
	require.NoError(t, oc.Write(groupSend("after-leave", group, "gone")))
	or.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["after-leave"] != nil })
	lr.waitFor(t, 10*time.Second, "the late one gets it", func(r *reader) bool { return len(r.messages) == 2 })
	time.Sleep(300 * time.Millisecond)
	msgs, _, _, _ = mr.snapshot()
	require.Len(t, msgs, 2, "nothing after removal")
	require.Equal(t, "forbidden", apiCode(groupAPI(t, n, member, http.MethodGet, "/v1/conversations/group:"+group+"/messages", nil, nil)))
	require.NoError(t, mc.Write(groupSend("m-after", group, "can I?")))
	mr.waitFor(t, 10*time.Second, "forbidden", func(r *reader) bool { return len(r.errors) == 1 })
	require.Equal(t, "forbidden", mr.errors[0].Code)

	// The owner sees the members.
	var g groupBody
	require.NoError(t, groupAPI(t, n, owner, http.MethodGet, "/v1/groups/"+group, nil, &g))
	require.ElementsMatch(t, []string{owner.UserID, late.UserID}, g.Group.Members)
}

// Issue 4, acceptance 4: the node dies right after the commits, before pushing any
// message (the fault hook holds the pushes back, then SIGKILL): after a restart every
// member gets each message exactly once, from its queue.
func TestGroupFanoutAfterCrash(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig, node.FaultHoldDelivery+"=1")
	users := make([]client.Session, 30)
	for i := range users {
		users[i] = newUser(t, n, fmt.Sprintf("c%02d", i))
	}
	group := createGroup(t, n, users[0], users[1:])
	oc := dial(t, n, users[0])
	or := startReader(oc)
	for k := range 5 {
		require.NoError(t, oc.Write(groupSend(fmt.Sprint("k", k), group, "held back")))
	}
	or.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return len(r.sent) == 5 })
	n.Kill()
	n.SetEnv(node.FaultHoldDelivery + "=0")
	n.Restart()
	for i, u := range users {
		c := dial(t, n, u)
		r := startReader(c)
		syncNow(t, c, r, nil)
		r.waitFor(t, 30*time.Second, fmt.Sprint("member ", i), func(r *reader) bool { return len(r.messages) >= 5 })
		time.Sleep(50 * time.Millisecond)
		msgs, _, _, _ := r.snapshot()
		require.Len(t, msgs, 5, "member %d: exactly once", i)
		require.True(t, sorted(requireStream(t, msgs, 1)))
		_ = c.Close()
	}
}

// Typing in a group reaches the online members, and is never stored.
func TestGroupTyping(t *testing.T) {
	n := startNode(t, fastConfig)
	a, b, c := newUser(t, n, "ta"), newUser(t, n, "tb"), newUser(t, n, "tc")
	group := createGroup(t, n, a, []client.Session{b, c})
	ac, bc := dial(t, n, a), dial(t, n, b)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, bc, br, nil)
	require.NoError(t, ac.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Typing{Typing: &parleypb.Typing{Group: group}}}))
	br.waitFor(t, 10*time.Second, "typing", func(r *reader) bool { return len(r.other) == 1 })
	typing := br.other[0].GetTyping()
	require.NotNil(t, typing)
	require.Equal(t, a.UserID, typing.From)
	require.Equal(t, "group:"+group, typing.Conversation)
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, ar.other, "not echoed to the typist")
	cc := dial(t, n, c) // c was offline: nothing stored for it
	cr := startReader(cc)
	syncNow(t, cc, cr, nil)
	msgs, _, _, _ := cr.snapshot()
	require.Empty(t, msgs)
	require.Empty(t, cr.other)
}
