package actors

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// feedRecorder is a FeedSocket that keeps the JSON frames it is given.
type feedRecorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (f *feedRecorder) WriteFeed(feed *wire.Feed) error {
	b := feed.Frames(wire.JSON, func(b, payload []byte) []byte { return append(append(b, '|'), payload...) })
	f.mu.Lock()
	f.frames = append(f.frames, b)
	f.mu.Unlock()
	return nil
}

func (f *feedRecorder) Cork()   {}
func (f *feedRecorder) Uncork() {}

func (f *feedRecorder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.frames)
}

func waitCount(t *testing.T, f *feedRecorder, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return f.count() == want }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, want, f.count())
}

// The hub writes a publish to the channel's subscribers only; a leave (a socket
// closing) or a removal stops it; a join adds a registered socket; a channel the
// user left after it registered is not added back by a late Subscribe; and a feed
// is encoded once for every socket.
func TestChannelHub(t *testing.T) {
	h := NewChannelHub(nil)
	a, b, c := &feedRecorder{}, &feedRecorder{}, &feedRecorder{}
	sa := h.Register("alice", a, 0)
	sb := h.Register("bob", b, 1)
	sc := h.Register("carol", c, 2)
	h.Subscribe(sa, []string{"channel:x", "channel:y"})
	h.Subscribe(sb, []string{"channel:x"})
	msg := []*parleypb.Message{{MessageId: 7, Conversation: "channel:x", Channel: "x", From: "o", Text: "hi", Prev: 3}}

	require.Equal(t, 2, h.Publish("channel:x", msg))
	waitCount(t, a, 1)
	waitCount(t, b, 1)
	waitCount(t, c, 0)
	require.Equal(t, a.frames[0], b.frames[0])
	require.Contains(t, string(a.frames[0]), `"prev":"3"`)
	require.NotContains(t, string(a.frames[0]), `"seq"`, "a channel message has no seq")

	h.Members("channel:x", []string{"carol"}, []string{"bob"})
	require.Equal(t, 2, h.Publish("channel:x", msg))
	waitCount(t, a, 2)
	waitCount(t, b, 1)
	waitCount(t, c, 1)

	h.Members("channel:y", nil, []string{"carol"}) // carol left y before her Subscribe lands
	h.Subscribe(sc, []string{"channel:y"})
	require.Equal(t, 1, h.Publish("channel:y", msg), "alice only")
	waitCount(t, a, 3)
	waitCount(t, c, 1)

	h.Leave(sa)
	require.Equal(t, 1, h.Publish("channel:x", msg))
	require.Zero(t, h.Subscribers("channel:y"), "a channel with no subscriber left is dropped")
	waitCount(t, a, 3)
	waitCount(t, c, 2)
	require.Zero(t, h.Publish("channel:none", msg))
}
