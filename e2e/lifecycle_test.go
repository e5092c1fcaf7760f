package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// SIGTERM while writes are in flight (issue 10): the node exits 0 with no panic
// and logs no error of its own, and every message it answered sent is, after a
// restart, in its recipient's queue and its sender's, exactly once.
func TestShutdownWithWritesInFlight(t *testing.T) {
	n := startNode(t, fastConfig)
	const pairs = 8
	type sender struct {
		conn *client.Conn
		r    *reader
		from client.Session
		to   client.Session
	}
	senders := make([]sender, pairs)
	for i := range senders {
		a, b := newUser(t, n, fmt.Sprint("w", i)), newUser(t, n, fmt.Sprint("r", i))
		c := dial(t, n, a)
		senders[i] = sender{conn: c, r: startReader(c), from: a, to: b}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() { // as fast as the socket takes them, never waiting for sent
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if s.conn.Write(sendFrame(fmt.Sprint("m", i), s.to.UserID, "in flight")) != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		total := 0
		for _, s := range senders {
			_, sent, _, _ := s.r.snapshot()
			total += sent
		}
		if total < 400 {
			return fmt.Errorf("%d sent", total)
		}
		return nil
	})

	require.NoError(t, n.Stop(30*time.Second), "clean exit with writes in flight")
	close(stop)
	wg.Wait()
	for _, line := range strings.Split(n.Log(), "\n") {
		require.NotContains(t, line, "panic", "node log")
		if strings.Contains(line, "level=ERROR") && !strings.Contains(line, "lib=protoactor") {
			t.Errorf("node logged an error: %s", line)
		}
	}

	n.Restart()
	acked := 0
	for _, s := range senders {
		<-s.r.done
		s.r.mu.Lock()
		want := make(map[string]bool, len(s.r.sent))
		for id := range s.r.sent {
			want[id] = true
		}
		s.r.mu.Unlock()
		acked += len(want)
		for _, who := range []client.Session{s.to, s.from} {
			c := dial(t, n, who)
			r := startReader(c)
			syncAll(t, c, r)
			msgs, _, _, _ := r.snapshot()
			seen := map[string]int{}
			for _, m := range msgs {
				seen[m.ClientId]++
				require.Equal(t, 1, seen[m.ClientId], "%s has %s twice", who.UserID, m.ClientId)
			}
			for id := range want {
				require.Equal(t, 1, seen[id], "%s's queue lacks acked %s", who.UserID, id)
			}
			_ = c.Drop()
		}
	}
	t.Logf("%d messages acked before SIGTERM, all in both queues once", acked)
}

// A logout closes that device's live connections with 1000 "logged out"; the
// user's other devices stay connected, and the logged-out token gets no new socket.
func TestLogoutClosesTheDevicesSockets(t *testing.T) {
	n := startNode(t, fastConfig)
	phone := newUser(t, n, "alice")
	laptop := device(t, n, phone, "laptop")
	p1, p2, lc := dial(t, n, phone), dial(t, n, phone), dial(t, n, laptop)
	rs := syncedReaders(t, p1, p2, lc)
	r1, r2, lr := rs[0], rs[1], rs[2]

	req, err := http.NewRequestWithContext(testenv.Context(t, 10*time.Second), http.MethodDelete, n.URL+"/v1/sessions/current", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+phone.Token)
	require.NoError(t, client.Do(req, nil))
	for _, r := range []*reader{r1, r2} {
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a logged-out device's socket stayed open")
		}
		require.True(t, client.IsClose(r.err, 1000), "closed with %v", r.err)
	}
	syncNow(t, lc, lr, nil) // the laptop is still served
	_, err = client.Dial(testenv.Context(t, 10*time.Second), n.URL, phone.Token, wire.JSON)
	var status ws.StatusError
	require.ErrorAs(t, err, &status)
	require.Equal(t, http.StatusUnauthorized, int(status))
}
