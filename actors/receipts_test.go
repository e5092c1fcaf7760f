package actors

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// An acknowledgement makes one delivered watermark per conversation of the
// messages it covers, at the highest id, naming their senders but the member; what
// it does not cover stays for the next one, and a replayed page is not counted
// twice.
func TestAcksTake(t *testing.T) {
	m := func(conv, from string, id int64) *parleypb.Message {
		return &parleypb.Message{Conversation: conv, From: from, MessageId: id}
	}
	u := &acks{}
	u.add(1, m("dm:a:b", "b", 10))
	u.add(2, m("dm:a:c", "c", 20))
	u.add(3, m("dm:a:b", "a", 11))
	u.add(4, m("group:g", "c", 30))
	u.add(5, m("group:g", "d", 31))
	u.add(6, m("channel:c", "d", 40)) // a mention: no receipt
	u.add(3, m("dm:a:b", "a", 11))    // a replay
	require.Equal(t, []persistence.ReceiptMove{
		{Conversation: "dm:a:b", User: "a", Status: persistence.Delivered, UpTo: 11, Senders: []string{"b"}},
		{Conversation: "dm:a:c", User: "a", Status: persistence.Delivered, UpTo: 20, Senders: []string{"c"}},
		{Conversation: "group:g", User: "a", Status: persistence.Delivered, UpTo: 30, Senders: []string{"c"}},
	}, u.take(4, "a"))
	require.Equal(t, []persistence.ReceiptMove{
		{Conversation: "group:g", User: "a", Status: persistence.Delivered, UpTo: 31, Senders: []string{"d"}},
	}, u.take(9, "a"))
	require.Empty(t, u.sent)
	require.Nil(t, u.take(10, "a"))
	var none *acks
	require.Nil(t, none.take(1, "a"))

	for i := range maxUnacked + 10 { // past the bound, the oldest go
		u.add(uint64(100+i), m("dm:a:b", "b", int64(1000+i)))
	}
	require.Len(t, u.sent, maxUnacked)
	require.Equal(t, uint64(110), u.sent[0].seq)
}
