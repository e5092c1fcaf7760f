package actors

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

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

// What the relay gathers for one tell: per user it is due to (and connection left
// out), one Notify; per member and conversation the highest delivered and read,
// and no delivered that the read covers.
func TestRelayGathers(t *testing.T) {
	r := &receiptRelay{}
	from := &actor.PID{Address: "node-1", Id: "conn/7"}
	moved := func(from *actor.PID, moves ...persistence.ReceiptMove) *receiptsMoved {
		return &receiptsMoved{moves: moves, from: from}
	}
	delivered := func(conv, user string, upTo int64, senders ...string) persistence.ReceiptMove {
		return persistence.ReceiptMove{Conversation: conv, User: user, Status: persistence.Delivered, UpTo: upTo, Senders: senders}
	}
	read := func(conv, user string, upTo int64, senders ...string) persistence.ReceiptMove {
		return persistence.ReceiptMove{Conversation: conv, User: user, Status: persistence.Read, UpTo: upTo, Senders: senders}
	}
	for _, m := range []*receiptsMoved{
		moved(nil, delivered("dm:a:b", "b", 10, "a"), delivered("group:g", "b", 30, "a", "c")),
		moved(nil, delivered("dm:a:b", "b", 12, "a")),
		moved(nil, delivered("dm:a:b", "b", 11, "a")),       // below what is gathered
		moved(from, read("dm:a:b", "b", 12, "a")),           // covers the delivered at 12
		moved(nil, delivered("group:g", "b", 32, "a", "c")), // above the read below
		moved(from, read("group:g", "b", 31, "c")),          // to c only, and to b's other devices
		moved(nil, delivered("group:g", "d", 40, "a")),      // another member
		moved(from, read("dm:a:b", "b", 5, "a")),            // behind: nothing moves
	} {
		r.gather(m)
	}
	users, ns := r.gathered()
	type told struct {
		user, except string
		receipts     []string
	}
	var got []told
	for i, n := range ns {
		x := told{user: users[i]}
		if n.Except != nil {
			x.except = n.Except.Id
		}
		for _, rc := range n.Receipts {
			x.receipts = append(x.receipts, fmt.Sprint(rc.Conversation, " ", rc.User, " ", rc.Status, " ", rc.UpTo))
		}
		got = append(got, x)
	}
	require.Equal(t, []told{
		{user: "a", receipts: []string{"dm:a:b b read 12", "group:g b delivered 32", "group:g d delivered 40"}},
		{user: "c", receipts: []string{"group:g b delivered 32", "group:g b read 31"}},
		{user: "b", except: "conn/7", receipts: []string{"dm:a:b b read 12", "group:g b read 31"}},
	}, got)
}

// A connection remembers the last recentLen unread messages of others it wrote of
// direct conversations: a read of one of them is taken without the store, and
// forgets what it covers.
func TestRecentReads(t *testing.T) {
	var none *recent
	require.False(t, none.has("dm:a:b", 1))
	r := &recent{}
	for i := range int64(recentLen + 2) {
		r.add("dm:a:b", 100+i)
	}
	r.add("dm:a:c", 7)
	require.False(t, r.has("dm:a:b", 100), "past the bound, the oldest go")
	require.False(t, r.has("dm:a:b", 102))
	require.True(t, r.has("dm:a:b", 103))
	require.True(t, r.has("dm:a:b", 100+recentLen+1))
	require.False(t, r.has("dm:a:c", 103), "another conversation's id")

	require.False(t, r.read("dm:a:b", 110))
	require.False(t, r.has("dm:a:b", 110), "read: forgotten")
	require.False(t, r.has("dm:a:b", 105))
	require.True(t, r.has("dm:a:b", 111))
	require.True(t, r.has("dm:a:c", 7), "each conversation its own")
	require.False(t, r.read("dm:a:b", 100+recentLen+1))
	require.True(t, r.read("dm:a:c", 7), "everything read")
}
