package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// fakeNode is a scripted stand-in for a node, for the answers real nodes rarely
// give (unavailable, a rejected token). It speaks JSON and keeps no queue.
type fakeNode struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	logins     int
	token      string            // the only token the WebSocket accepts
	sends      map[string]int    // send frames per client id
	syncs      int               // sync frames
	failSends  int               // answer the first failSends sends of each id with unavailable
	failSyncs  int               // answer the first failSyncs syncs with an id-less unavailable
	conns      map[net.Conn]bool // open sockets
	received   []uint64          // received frames' upTo
	onSync     func(n int) []*parleypb.Message
	lastSynced *parleypb.Synced
}

func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{t: t, sends: map[string]int{}, conns: map[net.Conn]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Username, Password, Device string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.logins++
		f.token = fmt.Sprintf("token-%d", f.logins)
		token := f.token
		f.mu.Unlock()
		device := body.Device
		if device == "" {
			device = "dfake"
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(Session{Token: token, UserID: body.Username, DeviceID: device})
	})
	mux.HandleFunc("GET /v1/ws", f.serveWS)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.dropAll()
		f.srv.Close()
	})
	return f
}

func (f *fakeNode) serveWS(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	ok := r.Header.Get("Authorization") == "Bearer "+f.token
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.conns[conn] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
		_ = conn.Close()
	}()
	write := func(sf *parleypb.ServerFrame) {
		b, err := wire.EncodeServer(wire.JSON, sf)
		if err != nil {
			panic(err)
		}
		_ = wsutil.WriteServerMessage(conn, ws.OpText, b)
	}
	for {
		data, _, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		cf, err := wire.DecodeClient(wire.JSON, data)
		if err != nil {
			continue
		}
		switch b := cf.Body.(type) {
		case *parleypb.ClientFrame_Sync:
			f.mu.Lock()
			f.syncs++
			n, fail, onSync := f.syncs, f.syncs <= f.failSyncs, f.onSync
			f.mu.Unlock()
			if fail {
				write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{Code: "unavailable", Message: "sync failed; try again"}}})
				continue
			}
			upTo := b.Sync.GetAfter()
			if onSync != nil {
				for _, m := range onSync(n) {
					if m.Seq > b.Sync.GetAfter() {
						write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}})
						upTo = m.Seq
					}
				}
			}
			s := &parleypb.Synced{UpTo: upTo}
			f.mu.Lock()
			f.lastSynced = s
			f.mu.Unlock()
			write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: s}})
		case *parleypb.ClientFrame_Send:
			s := b.Send
			f.mu.Lock()
			f.sends[s.Id]++
			fail := f.sends[s.Id] <= f.failSends
			f.mu.Unlock()
			if fail {
				write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{Id: s.Id, Code: "unavailable",
					Message: "not confirmed committed (timed out); send it again with the same id, a repeat is stored once"}}})
				continue
			}
			write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{Id: s.Id,
				MessageId: int64(len(s.Id)) * 1000, Conversation: convid.DirectID("alice", s.To)}}})
		case *parleypb.ClientFrame_Received:
			f.mu.Lock()
			f.received = append(f.received, b.Received.UpTo)
			f.mu.Unlock()
		case *parleypb.ClientFrame_Ping:
			write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}})
		}
	}
}

// goingAway closes every socket with 1001.
func (f *fakeNode) goingAway() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server shutting down")))
		_ = c.Close()
	}
}

func (f *fakeNode) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		_ = c.Close()
	}
}

func (f *fakeNode) get(read func(f *fakeNode) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return read(f)
}

func fakeClient(t *testing.T, f *fakeNode, box *inbox) *Client {
	t.Helper()
	opts := Options{Nodes: []string{f.srv.URL}, Username: "alice", Password: "whatever", Logger: testLogger(t, "alice")}
	if box != nil {
		opts.OnMessage = box.on
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Connect(testenv.Context(t, 10*time.Second)))
	return c
}

// An unavailable answer is sent again with the same id until it is sent.
func TestFakeSendUnavailableRetried(t *testing.T) {
	f := newFakeNode(t)
	f.failSends = 3
	c := fakeClient(t, f, nil)
	ctx := testenv.Context(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range 5 {
		wg.Go(func() {
			id, err := c.SendID(ctx, fmt.Sprintf("id-%d", i), "bob", "hi")
			if err == nil && id != 4000 {
				err = fmt.Errorf("message id %d", id)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.sends, 5)
	for id, n := range f.sends {
		require.Equal(t, 4, n, "sends of %s", id)
	}
}

// An id-less unavailable (a failed sync) is followed by another sync; Connect
// returns when one succeeds.
func TestFakeSyncUnavailableRetried(t *testing.T) {
	f := newFakeNode(t)
	f.failSyncs = 2
	f.onSync = func(int) []*parleypb.Message {
		return []*parleypb.Message{{Seq: 1, MessageId: 11, Conversation: "dm:alice:bob", From: "bob", To: "alice", Text: "one"}}
	}
	box := &inbox{t: t}
	c := fakeClient(t, f, box)
	require.Equal(t, 3, f.get(func(f *fakeNode) int { return f.syncs }))
	box.waitCount(1, 5*time.Second)
	cur, known := c.Cursor()
	require.True(t, known)
	require.EqualValues(t, 1, cur)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if f.get(func(f *fakeNode) int { return len(f.received) }) == 0 {
			return fmt.Errorf("no received frame")
		}
		return nil
	})
}

// Close 1001 makes the client reconnect; a token the node rejects is replaced by
// a new login; the new connection syncs after the cursor, and repeats are dropped.
func TestFakeGoingAwayAndTokenRejected(t *testing.T) {
	f := newFakeNode(t)
	msgs := []*parleypb.Message{
		{Seq: 1, MessageId: 11, Conversation: "dm:alice:bob", From: "bob", To: "alice", Text: "one"},
		{Seq: 2, MessageId: 12, Conversation: "dm:alice:bob", From: "bob", To: "alice", Text: "two"},
		{Seq: 3, MessageId: 12, Conversation: "dm:alice:bob", From: "bob", To: "alice", Text: "two again, at another seq"},
		{Seq: 4, MessageId: 13, Conversation: "dm:alice:bob", From: "bob", To: "alice", Text: "three"},
	}
	f.onSync = func(n int) []*parleypb.Message {
		if n == 1 {
			return msgs[:2]
		}
		return msgs
	}
	box := &inbox{t: t}
	c := fakeClient(t, f, box)
	box.waitCount(2, 5*time.Second)

	f.mu.Lock()
	f.token = "nobody has this" // every token so far is rejected now
	f.mu.Unlock()
	f.goingAway()

	box.waitCount(3, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	got := box.snapshot()
	require.Len(t, got, 3)
	require.Equal(t, []string{"one", "two", "three"}, []string{got[0].Text, got[1].Text, got[2].Text})
	require.Equal(t, 2, f.get(func(f *fakeNode) int { return f.logins }))
	f.mu.Lock()
	require.EqualValues(t, 4, f.lastSynced.UpTo)
	f.mu.Unlock()
	cur, _ := c.Cursor()
	require.EqualValues(t, 4, cur)
	require.Equal(t, "dfake", c.DeviceID())
	require.True(t, strings.HasPrefix(c.Node(), "http://127.0.0.1:"))
}
