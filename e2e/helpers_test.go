// Package e2e holds the acceptance tests: real node processes on loopback, a real
// PostgreSQL (from `make test`), and real WebSocket clients.
package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

const password = "correct horse battery"

// fastConfig lifts the per-connection frame rate and the per-user budgets so that
// load tests are not cut off (budgets_test.go tests those).
const fastConfig = `
auth:
  bcryptCost: 4
limits:
  frameRate: 100000
  frameBurst: 100000
  userSends: {burst: 0}
  userReads: {burst: 0}
  groupsCreated: {burst: 0}
  conversationsStarted: {burst: 0}
`

func startNode(t *testing.T, yaml string) *testenv.Node {
	t.Helper()
	return testenv.StartNode(t, testenv.DatabaseURL(t), yaml)
}

// newUser registers a fresh user and opens a session for device ("" = new device).
func newUser(t *testing.T, n *testenv.Node, prefix string) client.Session {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	name := testenv.Name(prefix)
	require.NoError(t, client.Register(ctx, n.URL, name, password))
	s, err := client.Login(ctx, n.URL, name, password, "")
	require.NoError(t, err)
	return s
}

// device opens another session of the same user.
func device(t *testing.T, n *testenv.Node, s client.Session, device string) client.Session {
	t.Helper()
	d, err := client.Login(testenv.Context(t, 30*time.Second), n.URL, s.UserID, password, device)
	require.NoError(t, err)
	return d
}

func dial(t *testing.T, n *testenv.Node, s client.Session) *client.Conn {
	t.Helper()
	return dialEnc(t, n, s, wire.JSON)
}

func dialEnc(t *testing.T, n *testenv.Node, s client.Session, enc wire.Encoding) *client.Conn {
	t.Helper()
	c, err := client.Dial(testenv.Context(t, 30*time.Second), n.URL, s.Token, enc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Drop() })
	return c
}

func sendFrame(id, to, text string) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, To: to, Text: text}}}
}

func syncFrame(after *uint64) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: after}}}
}

func receivedFrame(upTo uint64) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: upTo}}}
}

// reader collects what a connection receives, on its own goroutine.
type reader struct {
	mu       sync.Mutex
	messages []*parleypb.Message
	sent     map[string]*parleypb.Sent
	errors   []*parleypb.Error
	synced   []*parleypb.Synced
	history  []*parleypb.History
	other    []*parleypb.ServerFrame
	err      error // how reading ended
	done     chan struct{}
}

func startReader(c *client.Conn) *reader {
	r := &reader{sent: map[string]*parleypb.Sent{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			f, err := c.Read(60 * time.Second)
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			switch b := f.Body.(type) {
			case *parleypb.ServerFrame_Message:
				r.messages = append(r.messages, b.Message)
			case *parleypb.ServerFrame_Sent:
				r.sent[b.Sent.Id] = b.Sent
			case *parleypb.ServerFrame_Error:
				r.errors = append(r.errors, b.Error)
			case *parleypb.ServerFrame_Synced:
				r.synced = append(r.synced, b.Synced)
			case *parleypb.ServerFrame_History:
				r.history = append(r.history, b.History)
			default:
				r.other = append(r.other, f)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) snapshot() (msgs []*parleypb.Message, sent int, errs []*parleypb.Error, synced int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*parleypb.Message(nil), r.messages...), len(r.sent), append([]*parleypb.Error(nil), r.errors...), len(r.synced)
}

// waitFor polls the reader until cond holds.
func (r *reader) waitFor(t *testing.T, d time.Duration, what string, cond func(r *reader) bool) {
	t.Helper()
	testenv.CheckFor(t, d, 20*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if cond(r) {
			return nil
		}
		return fmt.Errorf("waiting for %s: have %d messages, %d sent, %d errors %v, %d synced, read error %v",
			what, len(r.messages), len(r.sent), len(r.errors), r.errors, len(r.synced), r.err)
	})
}

// syncNow sends sync and waits for its synced answer.
// syncedReaders starts a reader on each connection and syncs it from its cursor.
func syncedReaders(t *testing.T, conns ...*client.Conn) []*reader {
	t.Helper()
	rs := make([]*reader, len(conns))
	for i, c := range conns {
		rs[i] = startReader(c)
		syncNow(t, c, rs[i], nil)
	}
	return rs
}

func syncNow(t *testing.T, c *client.Conn, r *reader, after *uint64) *parleypb.Synced {
	t.Helper()
	return syncNowFrame(t, c, r, &parleypb.Sync{After: after})
}

// syncNowFrame sends s and waits for its synced answer.
func syncNowFrame(t *testing.T, c *client.Conn, r *reader, s *parleypb.Sync) *parleypb.Synced {
	t.Helper()
	r.mu.Lock()
	before := len(r.synced)
	r.mu.Unlock()
	require.NoError(t, c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: s}}))
	r.waitFor(t, 30*time.Second, "synced", func(r *reader) bool { return len(r.synced) > before })
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[before]
}

// requireStream checks that messages have consecutive seqs from first and no repeated
// message id, and returns their message ids in order.
func requireStream(t *testing.T, msgs []*parleypb.Message, first uint64) []int64 {
	t.Helper()
	ids := make([]int64, len(msgs))
	seen := map[int64]bool{}
	for i, m := range msgs {
		require.Equal(t, first+uint64(i), m.Seq, "seq of entry %d", i)
		require.False(t, seen[m.MessageId], "message %d twice", m.MessageId)
		seen[m.MessageId] = true
		ids[i] = m.MessageId
	}
	return ids
}

func sorted(ids []int64) bool {
	return sort.SliceIsSorted(ids, func(i, j int) bool { return ids[i] < ids[j] })
}

func ptr[T any](v T) *T { return &v }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// syncAll sends sync until the answer says there is no more.
func syncAll(t *testing.T, c *client.Conn, r *reader) {
	t.Helper()
	s := syncNow(t, c, r, nil)
	for s.More {
		s = syncNow(t, c, r, ptr(s.UpTo))
	}
}

// sentID reports whether the send with client id id was answered sent.
func (r *reader) sentID(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[id] != nil
}

// errorFor returns the error frame answering the frame with id, or nil. Call it
// with r.mu held (inside waitFor) or through errorOf.
func (r *reader) errorFor(id string) *parleypb.Error {
	for _, e := range r.errors {
		if e.Id == id {
			return e
		}
	}
	return nil
}

func (r *reader) errorOf(id string) *parleypb.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errorFor(id)
}
