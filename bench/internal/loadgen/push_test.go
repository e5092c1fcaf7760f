package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/push"
	"github.com/parleychat/parley/internal/testenv"
)

// TestPushRun: the push load. With -push the traffic is one-way and each
// recipient registers a webhook target; with -push-offline the recipients stay
// offline, so the gateway hears of every one of them, and with them online it
// hears nothing.
func TestPushRun(t *testing.T) {
	var mu sync.Mutex
	tokens := map[string]int{}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b push.WebhookBody
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &b)
		mu.Lock()
		tokens[b.Token]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(gw.Close)
	yaml := nodeYAML + "push:\n  gather: 200ms\n  poll: 50ms\n  webhook:\n    url: " + gw.URL + "\n"
	n := testenv.StartNode(t, testenv.DatabaseURL(t), yaml, "PARLEY_PUSH_WEBHOOK_SECRET=loadgen-test-webhook-secret-0123456789")
	heard := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range tokens {
			out[k] = v
		}
		return out
	}

	res := run(t, Config{URLs: []string{n.URL}, Conns: 20, Rate: 100, Duration: 2 * time.Second, Procs: 1,
		UsersPrefix: "pon", Push: push.Webhook})
	requireClean(t, res)
	require.Equal(t, 20, res.ConnsUp, "everyone online")
	require.Equal(t, res.Sent, res.Delivered, "one-way, each message delivered once")
	time.Sleep(time.Second)
	require.Empty(t, heard(), "recipients online: no push")

	res = run(t, Config{URLs: []string{n.URL}, Conns: 20, Rate: 100, Duration: 2 * time.Second, Procs: 1,
		UsersPrefix: "poff", Push: push.Webhook, PushOffline: true})
	requireClean(t, res)
	require.Equal(t, 10, res.ConnsUp, "only the senders connect")
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent, res.Acked)
	require.Zero(t, res.Delivered)
	require.Contains(t, res.Markdown(), "push load")
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if h := heard(); len(h) < 10 {
			return fmt.Errorf("recipients pushed so far: %v", keys(h))
		}
		return nil
	})
	for token := range heard() {
		require.True(t, strings.HasPrefix(token, "poff-0-"), token)
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
