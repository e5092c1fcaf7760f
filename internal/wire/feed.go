package wire

import (
	"sync"

	"github.com/parleychat/parley/proto/parleypb"
)

// A Feed is message frames written alike to many sockets (a channel's messages, to
// every member online on a node): each encoding's frames are made once, by the
// first socket of that encoding to write them, and then shared.
type Feed struct {
	msgs   []*parleypb.Message
	once   [2]sync.Once
	frames [2][]byte
}

// NewFeed is a feed of msgs, in order. They must not change afterwards.
func NewFeed(msgs []*parleypb.Message) *Feed { return &Feed{msgs: msgs} }

// Len is the number of messages in the feed.
func (f *Feed) Len() int { return len(f.msgs) }

// Frames returns the feed's message frames in enc, each laid out by frame (the
// caller's WebSocket framing: it appends payload as one frame to b), made on the
// first call for enc. A message that cannot be encoded is left out.
func (f *Feed) Frames(enc Encoding, frame func(b, payload []byte) []byte) []byte {
	i := 0
	if enc == Proto {
		i = 1
	}
	f.once[i].Do(func() {
		var b []byte
		for _, m := range f.msgs {
			p, err := EncodeServer(enc, &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}})
			if err == nil {
				b = frame(b, p)
			}
		}
		f.frames[i] = b
	})
	return f.frames[i]
}
