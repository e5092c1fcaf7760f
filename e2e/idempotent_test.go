package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
)

// Acceptance 3: the same client id sent 5 times, also across a reconnect, gives one
// message and the same messageId each time.
func TestIdempotentSend(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")

	var ids []int64
	sendOnce := func(c *client.Conn, r *reader, times int) {
		for range times {
			r.mu.Lock()
			delete(r.sent, "same-id")
			r.mu.Unlock()
			require.NoError(t, c.Write(sendFrame("same-id", bob.UserID, "only once")))
			r.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return r.sent["same-id"] != nil })
			r.mu.Lock()
			ids = append(ids, r.sent["same-id"].MessageId)
			r.mu.Unlock()
		}
	}
	ac := dial(t, n, alice)
	ar := startReader(ac)
	// Two at once, before either is answered, then one more.
	require.NoError(t, ac.Write(sendFrame("same-id", bob.UserID, "only once")))
	sendOnce(ac, ar, 2)
	require.NoError(t, ac.Close())

	ac = dial(t, n, alice)
	ar = startReader(ac)
	sendOnce(ac, ar, 2)
	require.Len(t, ids, 4)
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	time.Sleep(300 * time.Millisecond)
	msgs, _, _, _ := br.snapshot()
	require.Len(t, msgs, 1)
	require.Equal(t, ids[0], msgs[0].MessageId)
	require.Equal(t, "same-id", msgs[0].ClientId)

	var page struct {
		Messages []struct {
			MessageID string `json:"messageId"`
		} `json:"messages"`
	}
	req, _ := http.NewRequestWithContext(testenv.Context(t, 10*time.Second), http.MethodGet,
		n.URL+"/v1/conversations/"+convid.DirectID(alice.UserID, bob.UserID)+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	require.NoError(t, client.Do(req, &page))
	require.Len(t, page.Messages, 1, "history holds one message")
}
