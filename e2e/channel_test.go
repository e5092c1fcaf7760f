package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

type channelBody struct {
	Channel struct {
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Owner       string   `json:"owner"`
		Mode        string   `json:"mode"`
		Public      bool     `json:"public"`
		Admins      []string `json:"admins"`
		MemberCount int64    `json:"memberCount"`
	} `json:"channel"`
}

func createChannel(t *testing.T, n *testenv.Node, owner client.Session, mode string, public bool) string {
	t.Helper()
	var c channelBody
	require.NoError(t, groupAPI(t, n, owner, http.MethodPost, "/v1/channels",
		map[string]any{"name": "news", "mode": mode, "public": public}, &c))
	require.Equal(t, owner.UserID, c.Channel.Owner)
	require.Equal(t, int64(1), c.Channel.MemberCount)
	return c.Channel.ID
}

func addChannelMembers(t *testing.T, n *testenv.Node, by client.Session, channel string, users []string) {
	t.Helper()
	require.NoError(t, groupAPI(t, n, by, http.MethodPost, "/v1/channels/"+channel+"/members",
		map[string]any{"users": users}, nil))
}

// bulkUsers writes n accounts straight into the users table (one bcrypt hash of
// the test password at cost 4 for all), as a large deployment's import would: the
// node serves them like any other (they log in through POST /v1/sessions).
func bulkUsers(t *testing.T, db, prefix string, n int) []string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	require.NoError(t, err)
	base := testenv.Name(prefix)
	ids := make([]string, n)
	rows := make([][]any, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", base, i)
		rows[i] = []any{ids[i], ids[i], string(hash)}
	}
	ctx := testenv.Context(t, 60*time.Second)
	pg, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer pg.Close(ctx)
	_, err = pg.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "display_name", "password_hash"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)
	return ids
}

func login(t *testing.T, n *testenv.Node, user string) client.Session {
	t.Helper()
	s, err := client.Login(testenv.Context(t, 30*time.Second), n.URL, user, password, "")
	require.NoError(t, err)
	return s
}

func channelSend(id, channel, text string) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, Channel: channel, Text: text}}}
}

var channelsFrame = &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Channels{Channels: &parleypb.ChannelsRequest{}}}

// channelsNow asks for the user's channels and waits for the answer.
func channelsNow(t *testing.T, c *client.Conn, r *reader) *parleypb.Channels {
	t.Helper()
	before := len(r.channelsAnswers())
	require.NoError(t, c.Write(channelsFrame))
	r.waitFor(t, 30*time.Second, "channels", func(r *reader) bool { return len(r.channelsAnswersLocked()) > before })
	all := r.channelsAnswers()
	return all[len(all)-1]
}

func (r *reader) channelsAnswersLocked() []*parleypb.Channels {
	var out []*parleypb.Channels
	for _, f := range r.other {
		if c := f.GetChannels(); c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (r *reader) channelsAnswers() []*parleypb.Channels {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.channelsAnswersLocked()
}

func stateOf(cs *parleypb.Channels, channel string) *parleypb.ChannelState {
	for _, c := range cs.GetChannels() {
		if c.Id == channel {
			return c
		}
	}
	return nil
}

// channelHistoryAfter asks for the channel's messages after an id over the socket.
func channelHistoryAfter(t *testing.T, c *client.Conn, r *reader, id, channel string, after int64) *parleypb.History {
	t.Helper()
	require.NoError(t, c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
		Id: id, Conversation: "channel:" + channel, After: after, Limit: 100}}}))
	var h *parleypb.History
	r.waitFor(t, 30*time.Second, "history "+id, func(r *reader) bool {
		for _, x := range r.history {
			if x.Id == id {
				h = x
				return true
			}
		}
		return r.errorFor(id) != nil
	})
	if e := r.errorOf(id); e != nil {
		t.Fatalf("history %s: %s %s", id, e.Code, e.Message)
	}
	return h
}

// channelMessages are a reader's messages of one channel.
func channelMessages(r *reader, channel string) []*parleypb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return channelMessagesLocked(r, channel)
}

// channelMessagesLocked is channelMessages with r.mu held (in a waitFor).
func channelMessagesLocked(r *reader, channel string) []*parleypb.Message {
	var out []*parleypb.Message
	for _, m := range r.messages {
		if m.Channel == channel {
			out = append(out, m)
		}
	}
	return out
}

// Issue 13, acceptance 1: a 10,000-member channel, members added in bulk: one post
// writes one message row and no queue row; every online member gets each post live
// exactly once, in order, each naming the one before it (prev); an offline member's
// channels answer shows the right unread count, and history after its read
// position returns exactly what it missed.
func TestChannelOf10000(t *testing.T) {
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, fastConfig)
	owner := newUser(t, n, "owner")
	channel := createChannel(t, n, owner, "broadcast", false)
	members := bulkUsers(t, db, "cm", 9999)
	var wg sync.WaitGroup
	for i := 0; i < len(members); i += 1000 { // 10 calls of the default channelAddBatch, 2 at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			addChannelMembers(t, n, owner, channel, members[i:min(i+1000, len(members))])
		}()
		if i%2000 == 1000 {
			wg.Wait()
		}
	}
	wg.Wait()
	var got channelBody
	require.NoError(t, groupAPI(t, n, owner, http.MethodGet, "/v1/channels/"+channel, nil, &got))
	require.Equal(t, int64(10000), got.Channel.MemberCount)

	const online = 150
	conns, readers := make([]*client.Conn, online), make([]*reader, online)
	for i := range online {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i] = dial(t, n, login(t, n, members[i]))
			readers[i] = startReader(conns[i])
		}()
		if i%25 == 24 {
			wg.Wait()
		}
	}
	wg.Wait()
	for i := range online {
		st := stateOf(channelsNow(t, conns[i], readers[i]), channel)
		require.NotNil(t, st, "member %d has the channel", i)
		require.Equal(t, "member", st.Role)
	}
	// A member who is online for the first two posts, reads them, and goes.
	late := members[online]
	lc := dial(t, n, login(t, n, late))
	lr := startReader(lc)
	channelsNow(t, lc, lr)

	oc := dial(t, n, owner)
	or := startReader(oc)
	post := func(k int) int64 {
		id := fmt.Sprint("p", k)
		require.NoError(t, oc.Write(channelSend(id, channel, fmt.Sprint("post ", k))))
		or.waitFor(t, 30*time.Second, "sent "+id, func(r *reader) bool { return r.sent[id] != nil || r.errorFor(id) != nil })
		require.Nil(t, or.errorOf(id))
		return or.sent[id].MessageId
	}
	var ids []int64
	for k := range 2 {
		ids = append(ids, post(k))
	}
	lr.waitFor(t, 30*time.Second, "the late member's 2 posts", func(r *reader) bool { return len(r.messages) >= 2 })
	require.NoError(t, lc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{
		Conversation: "channel:" + channel, UpTo: ids[1]}}}))
	time.Sleep(300 * time.Millisecond) // the read rides the next side commit
	_ = lc.Close()
	for k := 2; k < 5; k++ {
		ids = append(ids, post(k))
	}

	ctx := testenv.Context(t, 60*time.Second)
	pg, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer pg.Close(ctx)
	var rows, queued int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM conversation_events WHERE conversation = $1 AND kind = 0`,
		"channel:"+channel).Scan(&rows))
	require.Equal(t, 5, rows, "one row per post, whatever the member count")
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM queue_ranges WHERE conversation = $1`, "channel:"+channel).Scan(&queued))
	require.Zero(t, queued, "no sync-queue row for any member")

	for i, r := range readers {
		r.waitFor(t, 30*time.Second, fmt.Sprint("member ", i, ": 5 posts"), func(r *reader) bool { return len(r.messages) >= 5 })
	}
	time.Sleep(200 * time.Millisecond) // anything repeated would be here by now
	for i, r := range readers {
		msgs := channelMessages(r, channel)
		require.Len(t, msgs, 5, "member %d: each post exactly once", i)
		prev := int64(0)
		for k, m := range msgs {
			require.Equal(t, ids[k], m.MessageId, "member %d: in order", i)
			require.Equal(t, prev, m.Prev, "member %d: prev names the message before", i)
			require.Zero(t, m.Seq, "a channel message is in no sync queue")
			require.Equal(t, fmt.Sprint("post ", k), m.Text)
			prev = m.MessageId
		}
	}

	lc = dial(t, n, login(t, n, late))
	lr = startReader(lc)
	st := stateOf(channelsNow(t, lc, lr), channel)
	require.NotNil(t, st)
	require.Equal(t, int64(3), st.Unread, "three posts since its read position")
	require.Equal(t, ids[1], st.ReadUpTo)
	require.Equal(t, ids[4], st.LastMessageId)
	h := channelHistoryAfter(t, lc, lr, "h1", channel, st.ReadUpTo)
	require.Len(t, h.Messages, 3)
	require.False(t, h.More)
	for k, m := range h.Messages {
		require.Equal(t, ids[k+2], m.MessageId, "exactly the missed posts, ascending")
	}
	// REST gives the same page.
	var page struct {
		Messages []struct {
			MessageID string `json:"messageId"`
		} `json:"messages"`
		More bool `json:"more"`
	}
	require.NoError(t, groupAPI(t, n, owner, http.MethodGet, fmt.Sprintf("/v1/channels/%s/messages?after=%d&limit=2", channel, ids[1]), nil, &page))
	require.Len(t, page.Messages, 2)
	require.True(t, page.More)
	require.Equal(t, strconv.FormatInt(ids[2], 10), page.Messages[0].MessageID)
	// The owner sees how many read, never who.
	var reads struct {
		ReadCount   int64 `json:"readCount"`
		MemberCount int64 `json:"memberCount"`
	}
	require.NoError(t, groupAPI(t, n, owner, http.MethodGet, fmt.Sprintf("/v1/channels/%s/reads?upTo=%d", channel, ids[1]), nil, &reads))
	require.Equal(t, int64(1), reads.ReadCount)
	require.Equal(t, int64(10000), reads.MemberCount)
	err = groupAPI(t, n, login(t, n, members[0]), http.MethodGet, "/v1/channels/"+channel+"/reads", nil, nil)
	require.Equal(t, "forbidden", apiCode(err), "a plain member sees no read counts")
}

// Issue 13, acceptance 2: a broadcast channel refuses a plain member's post; an
// open channel takes it, within the member's post rate.
func TestChannelModes(t *testing.T) {
	n := startNode(t, fastConfig+"  channelPosts: {rate: 0.01, burst: 2}\n")
	owner, member := newUser(t, n, "own"), newUser(t, n, "mem")
	broadcast := createChannel(t, n, owner, "broadcast", false)
	open := createChannel(t, n, owner, "open", false)
	addChannelMembers(t, n, owner, broadcast, []string{member.UserID})
	addChannelMembers(t, n, owner, open, []string{member.UserID})

	c := dial(t, n, member)
	r := startReader(c)
	require.NoError(t, c.Write(channelSend("b1", broadcast, "may I?")))
	r.waitFor(t, 10*time.Second, "b1", func(r *reader) bool { return r.errorFor("b1") != nil || r.sent["b1"] != nil })
	require.Equal(t, "forbidden", r.errorOf("b1").GetCode())

	for k := range 3 {
		require.NoError(t, c.Write(channelSend(fmt.Sprint("o", k), open, "hello")))
	}
	r.waitFor(t, 10*time.Second, "o0..o2", func(r *reader) bool {
		for k := range 3 {
			id := fmt.Sprint("o", k)
			if r.errorFor(id) == nil && r.sent[id] == nil {
				return false
			}
		}
		return true
	})
	require.NotNil(t, r.sent["o0"])
	require.NotNil(t, r.sent["o1"])
	require.Equal(t, "rate_limited", r.errorOf("o2").GetCode(), "the third post in a burst of two")
	require.Equal(t, "channel:"+open, r.sent["o0"].Conversation)

	// The owner is not rate-limited as a member is.
	oc := dial(t, n, owner)
	or := startReader(oc)
	for k := range 4 {
		require.NoError(t, oc.Write(channelSend(fmt.Sprint("w", k), open, "owner")))
	}
	or.waitFor(t, 10*time.Second, "owner's 4", func(r *reader) bool { return len(r.sent) == 4 })
	require.Empty(t, or.errors)
}

// Issue 13, acceptance 4: a non-member can neither read, post nor follow a
// channel; a removed member stops getting live messages at once, and loses its
// history.
func TestChannelAccess(t *testing.T) {
	n := startNode(t, fastConfig)
	owner, member, outsider := newUser(t, n, "own"), newUser(t, n, "mem"), newUser(t, n, "out")
	channel := createChannel(t, n, owner, "broadcast", false)
	addChannelMembers(t, n, owner, channel, []string{member.UserID})

	xc := dial(t, n, outsider)
	xr := startReader(xc)
	require.Nil(t, stateOf(channelsNow(t, xc, xr), channel), "an outsider does not follow it")
	require.NoError(t, xc.Write(channelSend("x1", channel, "let me in")))
	require.NoError(t, xc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
		Id: "xh", Conversation: "channel:" + channel}}}))
	xr.waitFor(t, 10*time.Second, "refusals", func(r *reader) bool { return r.errorFor("x1") != nil && r.errorFor("xh") != nil })
	require.Equal(t, "forbidden", xr.errorOf("x1").GetCode())
	require.Equal(t, "forbidden", xr.errorOf("xh").GetCode())
	err := groupAPI(t, n, outsider, http.MethodGet, "/v1/channels/"+channel+"/messages", nil, nil)
	require.Equal(t, "forbidden", apiCode(err))
	err = groupAPI(t, n, outsider, http.MethodGet, "/v1/channels/"+channel, nil, nil)
	require.Equal(t, "forbidden", apiCode(err), "a private channel is shown to members only")
	err = groupAPI(t, n, outsider, http.MethodPost, "/v1/channels/"+channel+"/members", map[string]string{"user": outsider.UserID}, nil)
	require.Equal(t, "forbidden", apiCode(err), "nobody joins a private channel by itself")
	err = groupAPI(t, n, member, http.MethodPost, "/v1/channels/"+channel+"/members", map[string]string{"user": outsider.UserID}, nil)
	require.Equal(t, "forbidden", apiCode(err), "a plain member adds nobody")
	err = groupAPI(t, n, owner, http.MethodPost, "/v1/channels/"+channel+"/members", map[string]string{"user": "nosuchuser"}, nil)
	require.Equal(t, "not_found", apiCode(err))
	err = groupAPI(t, n, owner, http.MethodGet, "/v1/channels/aaaaaaaaaaaaaaaa", nil, nil)
	require.Equal(t, "not_found", apiCode(err))

	mc := dial(t, n, member)
	mr := startReader(mc)
	require.NotNil(t, stateOf(channelsNow(t, mc, mr), channel))
	oc := dial(t, n, owner)
	or := startReader(oc)
	channelsNow(t, oc, or)
	require.NoError(t, oc.Write(channelSend("a", channel, "first")))
	mr.waitFor(t, 10*time.Second, "first", func(r *reader) bool { return len(r.messages) == 1 })

	require.NoError(t, groupAPI(t, n, owner, http.MethodDelete, "/v1/channels/"+channel+"/members/"+member.UserID, nil, nil))
	require.NoError(t, oc.Write(channelSend("b", channel, "after the removal")))
	or.waitFor(t, 10*time.Second, "the owner's own live copy", func(r *reader) bool { return len(channelMessagesLocked(r, channel)) == 2 })
	time.Sleep(300 * time.Millisecond)
	require.Len(t, channelMessages(mr, channel), 1, "nothing live after the removal")
	require.Len(t, channelMessages(xr, channel), 0, "an outsider never hears it")
	require.NoError(t, mc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
		Id: "mh", Conversation: "channel:" + channel}}}))
	mr.waitFor(t, 10*time.Second, "mh", func(r *reader) bool { return r.errorFor("mh") != nil || len(r.history) > 0 })
	require.Equal(t, "forbidden", mr.errorOf("mh").GetCode())

	// A public channel: anyone joins by itself, and follows it at once.
	pub := createChannel(t, n, owner, "broadcast", true)
	require.NoError(t, groupAPI(t, n, outsider, http.MethodGet, "/v1/channels/"+pub, nil, nil))
	require.NoError(t, groupAPI(t, n, outsider, http.MethodPost, "/v1/channels/"+pub+"/members", map[string]string{"user": outsider.UserID}, nil))
	time.Sleep(100 * time.Millisecond) // the join reaches the node's hub
	require.NoError(t, oc.Write(channelSend("p", pub, "welcome")))
	xr.waitFor(t, 10*time.Second, "the joiner's live copy", func(r *reader) bool { return len(channelMessagesLocked(r, pub)) == 1 })
	err = groupAPI(t, n, owner, http.MethodDelete, "/v1/channels/"+pub+"/members/"+owner.UserID, nil, nil)
	require.Equal(t, "bad_request", apiCode(err), "the owner cannot leave")
}

// Issue 13, acceptance 3: a 3-node cluster with members online on every node gets
// each post on every node; the node holding the channel grain is SIGKILLed: every
// post answered sent, before the kill or after it, reaches every member live or by
// the gap its prev shows (history after), none lost and none twice once deduped by
// id, and a member whose node died reconnects elsewhere and finds its gap.
func TestChannelClusterKill(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 3, 3)
	waitMembers(t, c, 3)
	owner := newUser(t, c.Nodes[0], "own")
	channel := createChannel(t, c.Nodes[0], owner, "broadcast", false)
	const perNode = 3
	members := make([]client.Session, 3*perNode)
	ids := make([]string, len(members))
	for i := range members {
		members[i] = newUser(t, c.Nodes[i%3], fmt.Sprintf("m%d", i))
		ids[i] = members[i].UserID
	}
	addChannelMembers(t, c.Nodes[1], owner, channel, ids)

	conns, readers := make([]*client.Conn, len(members)), make([]*reader, len(members))
	for i, m := range members {
		conns[i] = dial(t, c.Nodes[i%3], m)
		readers[i] = startReader(conns[i])
		require.NotNil(t, stateOf(channelsNow(t, conns[i], readers[i]), channel))
	}
	var posted []int64
	var oc *client.Conn
	var or *reader
	ownerOn := func(n *testenv.Node) {
		oc = dial(t, n, owner)
		or = startReader(oc)
	}
	post := func(k int) {
		id := fmt.Sprint("p", k)
		for try := 0; ; try++ { // an unavailable answer (the grain moving) is sent again with the same id
			require.NoError(t, oc.Write(channelSend(id, channel, fmt.Sprint("post ", k))))
			or.waitFor(t, 30*time.Second, "sent "+id, func(r *reader) bool { return r.sent[id] != nil || r.errorFor(id) != nil })
			if or.sentID(id) {
				break
			}
			require.Less(t, try, 20, "post %s: %v", id, or.errorOf(id))
			or.mu.Lock()
			or.errors = nil
			or.mu.Unlock()
			time.Sleep(250 * time.Millisecond)
		}
		or.mu.Lock()
		posted = append(posted, or.sent[id].MessageId)
		or.mu.Unlock()
	}
	ownerOn(c.Nodes[0])
	post(0)
	holder := -1
	for i, n := range c.Nodes {
		if slices.Contains(activeGrains(t, n), "Conversation/channel:"+channel) {
			holder = i
		}
	}
	require.GreaterOrEqual(t, holder, 0, "some node holds the channel grain")
	if holder == 0 {
		ownerOn(c.Nodes[1]) // the owner stays on a node that lives
	}
	for k := 1; k < 5; k++ {
		post(k)
	}
	for i, r := range readers { // every node delivers every post
		r.waitFor(t, 30*time.Second, fmt.Sprint("member ", i, " before the kill"), func(r *reader) bool {
			return len(channelMessagesLocked(r, channel)) >= 5
		})
	}

	c.Nodes[holder].Kill()
	for k := 5; k < 10; k++ {
		post(k)
	}
	time.Sleep(500 * time.Millisecond) // live copies still on their way
	for i := range members {
		if i%3 == holder { // its node died: reconnect elsewhere
			readers[i].waitFor(t, 30*time.Second, "the socket to end", func(r *reader) bool { return r.err != nil })
			conns[i] = dial(t, c.Nodes[(holder+1)%3], members[i])
			old := readers[i]
			readers[i] = startReader(conns[i])
			readers[i].mu.Lock()
			readers[i].messages = channelMessages(old, channel)
			readers[i].mu.Unlock()
		}
		// As a client does: the live messages that follow on from the start, each
		// naming the one before it, are whole; from the first whose prev is not the
		// last one had, pull history after it.
		got := map[int64]int{}
		whole, broken := int64(0), false
		for _, m := range channelMessages(readers[i], channel) {
			got[m.MessageId]++
			if !broken && m.Prev == whole {
				whole = m.MessageId
			} else {
				broken = true
			}
		}
		last := whole
		for id, n := range got {
			require.Equal(t, 1, n, "member %d: %d live once", i, id)
		}
		st := stateOf(channelsNow(t, conns[i], readers[i]), channel)
		require.NotNil(t, st)
		require.Equal(t, posted[len(posted)-1], st.LastMessageId, "member %d: the channel's last id", i)
		if last < st.LastMessageId { // the gap: pull it
			h := channelHistoryAfter(t, conns[i], readers[i], fmt.Sprint("gap", i), channel, last)
			for _, m := range h.Messages {
				if got[m.MessageId] == 0 { // dedupe by id: what came live is not counted twice
					got[m.MessageId]++
				}
			}
		}
		for _, id := range posted {
			require.Contains(t, got, id, "member %d: post %d delivered or pulled", i, id)
		}
		require.Len(t, got, len(posted), "member %d: nothing but the posts", i)
	}
}

// The channel limits: users per add call, members per channel, and the unread
// count's cap, each configured low.
func TestChannelLimits(t *testing.T) {
	n := startNode(t, fastConfig+"  channelAddBatch: 3\n  maxChannelMembers: 4\n  channelUnreadMax: 2\n  channelsPerUser: 2\n")
	owner := newUser(t, n, "own")
	users := make([]string, 4)
	for i := range users {
		users[i] = newUser(t, n, fmt.Sprint("u", i)).UserID
	}
	channel := createChannel(t, n, owner, "broadcast", false)
	err := groupAPI(t, n, owner, http.MethodPost, "/v1/channels/"+channel+"/members", map[string]any{"users": users}, nil)
	require.Equal(t, "bad_request", apiCode(err), "4 users in a call of at most 3")
	addChannelMembers(t, n, owner, channel, users[:3])
	err = groupAPI(t, n, owner, http.MethodPost, "/v1/channels/"+channel+"/members", map[string]string{"user": users[3]}, nil)
	require.Equal(t, "bad_request", apiCode(err), "a fifth member of a channel of at most 4")

	oc := dial(t, n, owner)
	or := startReader(oc)
	for k := range 3 {
		require.NoError(t, oc.Write(channelSend(fmt.Sprint("p", k), channel, "hello")))
	}
	or.waitFor(t, 10*time.Second, "3 sent", func(r *reader) bool { return len(r.sent) == 3 })
	mc := dial(t, n, login(t, n, users[0]))
	mr := startReader(mc)
	st := stateOf(channelsNow(t, mc, mr), channel)
	require.NotNil(t, st)
	require.Equal(t, int64(2), st.Unread, "3 unread, counted up to channelUnreadMax")

	// In three channels, a user's channels answer lists two (channelsPerUser).
	for range 2 {
		addChannelMembers(t, n, owner, createChannel(t, n, owner, "broadcast", false), users[:1])
	}
	require.Len(t, channelsNow(t, mc, mr).Channels, 2, "3 channels, listed up to channelsPerUser")
}
