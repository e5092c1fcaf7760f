package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
)

// SIGTERM: every socket is closed with 1001, the process exits 0, and what was
// answered sent survives into the next start.
func TestGracefulShutdown(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, bc, br, nil)
	const count = 50
	for i := range count {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprint("m", i), bob.UserID, "before shutdown")))
	}
	ar.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return len(r.sent) == count })

	require.NoError(t, n.Stop(30*time.Second), "clean exit")
	for _, r := range []*reader{ar, br} {
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Fatal("socket not closed")
		}
		require.True(t, client.IsClose(r.err, 1001), "closed with %v", r.err)
	}

	n.Restart()
	bc = dial(t, n, bob)
	br = startReader(bc)
	syncNow(t, bc, br, ptr(uint64(0)))
	br.waitFor(t, 30*time.Second, "all messages", func(r *reader) bool { return len(r.messages) == count })
	msgs, _, _, _ := br.snapshot()
	requireStream(t, msgs, 1)
}

// The protobuf encoding carries the same conversation as JSON, and the two kinds of
// client talk to each other.
func TestProtoEncoding(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac := dialEnc(t, n, alice, wire.Proto)
	bc := dialEnc(t, n, bob, wire.JSON)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	require.NoError(t, ac.Write(sendFrame("p1", bob.UserID, "over protobuf ✓")))
	require.NoError(t, bc.Write(sendFrame("j1", alice.UserID, "over json ✓")))
	for _, r := range []*reader{ar, br} {
		r.waitFor(t, 10*time.Second, "both messages", func(r *reader) bool { return len(r.messages) == 2 })
	}
	am, _, _, _ := ar.snapshot()
	bm, _, _, _ := br.snapshot()
	require.Equal(t, requireStream(t, am, 1), requireStream(t, bm, 1))
	texts := map[string]string{}
	for _, m := range bm {
		texts[m.ClientId] = m.Text
	}
	require.Equal(t, map[string]string{"p1": "over protobuf ✓", "j1": "over json ✓"}, texts)

	// A text frame on a protobuf connection is an error frame, not a crash.
	require.NoError(t, ac.WriteRaw(ws.OpText, []byte(`{"type":"ping"}`)))
	ar.waitFor(t, 10*time.Second, "error frame", func(r *reader) bool { return len(r.errors) == 1 })
	require.Equal(t, "bad_request", ar.errors[0].Code)
}

// Browsers cannot set headers: the token may come as ?token=; a missing one is 401.
func TestTokenInQuery(t *testing.T) {
	n := startNode(t, fastConfig)
	alice := newUser(t, n, "alice")
	ctx := testenv.Context(t, 10*time.Second)
	conn, _, _, err := ws.Dial(ctx, "ws"+n.URL[len("http"):]+"/v1/ws?token="+alice.Token)
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	_, _, _, err = ws.Dial(ctx, "ws"+n.URL[len("http"):]+"/v1/ws")
	require.Equal(t, ws.StatusError(http.StatusUnauthorized), err)
	_, _, _, err = ws.Dial(ctx, "ws"+n.URL[len("http"):]+"/v1/ws?encoding=xml&token="+alice.Token)
	require.Equal(t, ws.StatusError(http.StatusBadRequest), err)
}
