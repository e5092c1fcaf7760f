package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

// Acceptance 5: paging backwards through 250 messages with limit=50 returns each once,
// ascending within each page; REST and WebSocket agree.
func TestHistoryPaging(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	const count = 250
	for i := range count {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprintf("m%d", i), bob.UserID, fmt.Sprint("msg ", i))))
	}
	ar.waitFor(t, 60*time.Second, "sent", func(r *reader) bool { return len(r.sent) == count })
	conv := convid.DirectID(alice.UserID, bob.UserID)

	wsPage := func(before int64, i int) ([]int64, bool) {
		id := fmt.Sprint("h", i)
		require.NoError(t, ac.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
			Id: id, Conversation: conv, Before: before, Limit: 50}}}))
		var h *parleypb.History
		ar.waitFor(t, 10*time.Second, "history "+id, func(r *reader) bool {
			for _, x := range r.history {
				if x.Id == id {
					h = x
				}
			}
			return h != nil
		})
		ids := make([]int64, len(h.Messages))
		for i, m := range h.Messages {
			ids[i] = m.MessageId
			require.Equal(t, conv, m.Conversation)
		}
		return ids, h.More
	}
	restPage := func(before int64) ([]int64, bool) {
		q := url.Values{"limit": {"50"}}
		if before > 0 {
			q.Set("before", strconv.FormatInt(before, 10))
		}
		req, _ := http.NewRequestWithContext(testenv.Context(t, 10*time.Second), http.MethodGet,
			n.URL+"/v1/conversations/"+conv+"/messages?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+bob.Token)
		var page struct {
			Messages []struct {
				MessageID string `json:"messageId"`
			} `json:"messages"`
			More bool `json:"more"`
		}
		require.NoError(t, client.Do(req, &page))
		ids := make([]int64, len(page.Messages))
		for i, m := range page.Messages {
			id, err := strconv.ParseInt(m.MessageID, 10, 64)
			require.NoError(t, err)
			ids[i] = id
		}
		return ids, page.More
	}

	var all []int64
	before, pages := int64(0), 0
	for {
		ws, wsMore := wsPage(before, pages)
		rest, restMore := restPage(before)
		require.Equal(t, ws, rest, "page %d: REST and WebSocket agree", pages)
		require.Equal(t, wsMore, restMore)
		require.True(t, sorted(ws), "ascending within the page")
		require.LessOrEqual(t, len(ws), 50)
		all = append(ws, all...)
		pages++
		if !wsMore {
			break
		}
		before = ws[0]
	}
	require.Equal(t, 5, pages)
	require.Len(t, all, count)
	require.True(t, sorted(all))
	seen := map[int64]bool{}
	for _, id := range all {
		require.False(t, seen[id])
		seen[id] = true
	}
	ar.mu.Lock()
	for _, s := range ar.sent {
		require.True(t, seen[s.MessageId], "sent message %d is in the history", s.MessageId)
	}
	ar.mu.Unlock()
}
