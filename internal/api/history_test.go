package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

type page struct {
	Messages []map[string]any `json:"messages"`
	More     bool             `json:"more"`
}

// mustSeed appends n messages with ids 1000.. to dm:alice:bob, alternating
// senders; only alice's carry "to".
func mustSeed(t *testing.T, e *env, n int) {
	t.Helper()
	const conv = "dm:alice:bob"
	ms := make([]*parleypb.Message, n)
	for i := range ms {
		from, to := "alice", "bob"
		if i%2 == 1 {
			from, to = "bob", "alice"
		}
		id := int64(1000 + i)
		ms[i] = &parleypb.Message{MessageId: id, Conversation: conv, From: from, To: to,
			ClientId: fmt.Sprint("c", i), Text: fmt.Sprint("text ", i), Ts: id * 10}
	}
	_, err := e.store.AppendConversation(context.Background(),
		persistence.ConversationAppend{Conversation: conv, Messages: ms})
	require.NoError(t, err)
}

func (e *env) mustPage(t *testing.T, path, token string) page {
	t.Helper()
	status, _, body := e.call(t, "GET", path, token, "")
	require.Equal(t, http.StatusOK, status, string(body))
	var p page
	require.NoError(t, json.Unmarshal(body, &p))
	require.NotNil(t, p.Messages, "messages is an array, never null")
	return p
}

func TestHistoryPagesBackwards(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	token, _ := e.mustLogin(t, "alice", "")
	mustSeed(t, e, 120)

	var ids []int64
	before, pages := "", 0
	for {
		p := e.mustPage(t, "/v1/conversations/dm:alice:bob/messages?limit=50"+before, token)
		pages++
		var got []int64
		for _, m := range p.Messages {
			id, err := strconv.ParseInt(m["messageId"].(string), 10, 64)
			require.NoError(t, err)
			got = append(got, id)
		}
		ids = append(got, ids...)
		if !p.More {
			break
		}
		require.Len(t, p.Messages, 50)
		before = "&before=" + p.Messages[0]["messageId"].(string)
	}
	require.Equal(t, 3, pages)
	require.Len(t, ids, 120)
	for i, id := range ids {
		require.Equal(t, int64(1000+i), id, "every message once, ascending")
	}
}

func TestHistoryMessageShape(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "bob", "Bob")
	token, _ := e.mustLogin(t, "bob", "")
	mustSeed(t, e, 2)
	p := e.mustPage(t, "/v1/conversations/dm:alice:bob/messages", token)
	require.False(t, p.More)
	require.Equal(t, []map[string]any{
		{"messageId": "1000", "conversation": "dm:alice:bob", "from": "alice", "to": "bob",
			"text": "text 0", "ts": float64(10000), "clientId": "c0"},
		{"messageId": "1001", "conversation": "dm:alice:bob", "from": "bob", "to": "alice",
			"text": "text 1", "ts": float64(10010), "clientId": "c1"},
	}, p.Messages)
}

func TestHistoryLimits(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	token, _ := e.mustLogin(t, "alice", "")
	mustSeed(t, e, 120)
	const path = "/v1/conversations/dm:alice:bob/messages"
	cases := []struct {
		query string
		n     int
		more  bool
	}{
		{"", 50, true}, // the default
		{"?limit=1000", 100, true},
		{"?limit=99999999999999999999999", 100, true},
		{"?limit=7&before=1010", 7, true},
		{"?before=1005", 5, false},
		{"?before=1", 0, false},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p := e.mustPage(t, path+c.query, token)
			require.Len(t, p.Messages, c.n)
			require.Equal(t, c.more, p.More)
		})
	}
}

func TestHistoryErrors(t *testing.T) {
	e := mustStart(t, nil)
	for _, u := range []string{"alice", "bob", "carol"} {
		e.mustUser(t, u, u)
	}
	alice, _ := e.mustLogin(t, "alice", "")
	carol, _ := e.mustLogin(t, "carol", "")
	mustSeed(t, e, 3)
	cases := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"non-member", "/v1/conversations/dm:alice:bob/messages", carol, 403, "forbidden"},
		{"no token", "/v1/conversations/dm:alice:bob/messages", "", 401, "unauthorized"},
		{"limit zero", "/v1/conversations/dm:alice:bob/messages?limit=0", alice, 400, "bad_request"},
		{"limit negative", "/v1/conversations/dm:alice:bob/messages?limit=-5", alice, 400, "bad_request"},
		{"limit not a number", "/v1/conversations/dm:alice:bob/messages?limit=ten", alice, 400, "bad_request"},
		{"limit fraction", "/v1/conversations/dm:alice:bob/messages?limit=1.5", alice, 400, "bad_request"},
		{"before not a number", "/v1/conversations/dm:alice:bob/messages?before=x", alice, 400, "bad_request"},
		{"before zero", "/v1/conversations/dm:alice:bob/messages?before=0", alice, 400, "bad_request"},
		{"unsorted members", "/v1/conversations/dm:bob:alice/messages", alice, 400, "bad_request"},
		{"one member", "/v1/conversations/dm:alice/messages", alice, 400, "bad_request"},
		{"unknown kind", "/v1/conversations/chan:x/messages", alice, 400, "bad_request"},
		{"group", "/v1/conversations/group:abcdefghijklmnop/messages", alice, 404, "not_found"},
		{"group id not made by the server", "/v1/conversations/group:g1/messages", alice, 400, "bad_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := e.call(t, "GET", c.path, c.token, "")
			requireError(t, status, body, c.status, c.code)
		})
	}
	p := e.mustPage(t, "/v1/conversations/dm:alice:carol/messages", alice)
	require.Equal(t, page{Messages: []map[string]any{}}, p, "an empty conversation is an empty page")
}
