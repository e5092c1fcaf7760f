package wire

import (
	"math"
	"strings"

	pb "github.com/parleychat/parley/proto/parleypb"
)

// Frame builders shared by the tests, the fuzz test and the benchmarks.

func u64(v uint64) *uint64 { return &v }

func cSend(id, to, group, text string) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Send{Send: &pb.Send{Id: id, To: to, Group: group, Text: text}}}
}

func cSync(after *uint64, limit uint32) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Sync{Sync: &pb.Sync{After: after, Limit: limit}}}
}

func cReceived(upTo uint64) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Received{Received: &pb.Received{UpTo: upTo}}}
}

func cRead(conv string, upTo int64) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Read{Read: &pb.Read{Conversation: conv, UpTo: upTo}}}
}

func cHistory(id, conv string, before int64, limit uint32) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_History{History: &pb.HistoryRequest{
		Id: id, Conversation: conv, Before: before, Limit: limit}}}
}

func cTyping(to, group string) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Typing{Typing: &pb.Typing{To: to, Group: group}}}
}

func cPresence(status string) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Presence{Presence: &pb.SetPresence{Status: status}}}
}

func cPing() *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Ping{Ping: &pb.Ping{}}}
}

// validClientFrames covers every client frame type, with edge values.
func validClientFrames() map[string]*pb.ClientFrame {
	return map[string]*pb.ClientFrame{
		"send to":          cSend("c1", "bob", "", "hi"),
		"send group":       cSend("c2", "", "g42", "hello \"all\"\n\t<>&\u2028 ünïcode 🎉"),
		"send id 64":       cSend(strings.Repeat("x", 64), "bob", "", "x"),
		"send id 64 runes": cSend(strings.Repeat("é", 64), "bob", "", "x"),
		"sync empty":       cSync(nil, 0),
		"sync after 0":     cSync(u64(0), 0),
		"sync after":       cSync(u64(math.MaxUint64), 500),
		"received":         cReceived(18446744073709551615),
		"received 0":       cReceived(0),
		"read":             cRead("dm:alice:bob", math.MaxInt64),
		"read 0":           cRead("group:g1", 0),
		"history":          cHistory("h1", "group:g1", 7123456789012345678, 50),
		"history newest":   cHistory("h2", "dm:alice:bob", 0, 0),
		"typing to":        cTyping("bob", ""),
		"typing group":     cTyping("", "g1"),
		"presence online":  cPresence("online"),
		"presence away":    cPresence("away"),
		"ping":             cPing(),
	}
}

func sMessage(seq uint64, id int64, to, group string) *pb.Message {
	conv := "dm:alice:bob"
	if group != "" {
		conv = "group:" + group
	}
	return &pb.Message{Seq: seq, MessageId: id, Conversation: conv, From: "alice", To: to,
		Group: group, Text: "hi there", Ts: 1700000000000, ClientId: "c1"}
}

func validServerFrames() map[string]*pb.ServerFrame {
	return map[string]*pb.ServerFrame{
		"sent": {Body: &pb.ServerFrame_Sent{Sent: &pb.Sent{
			Id: "c1", MessageId: 7123456789012345678, Conversation: "dm:alice:bob", Ts: 1700000000000}}},
		"message dm":    {Body: &pb.ServerFrame_Message{Message: sMessage(42, 7123456789012345678, "bob", "")}},
		"message group": {Body: &pb.ServerFrame_Message{Message: sMessage(math.MaxUint64, math.MaxInt64, "", "g1")}},
		"message zero":  {Body: &pb.ServerFrame_Message{Message: &pb.Message{}}},
		"synced":        {Body: &pb.ServerFrame_Synced{Synced: &pb.Synced{UpTo: 99, More: true}}},
		"synced empty":  {Body: &pb.ServerFrame_Synced{Synced: &pb.Synced{}}},
		"receipt": {Body: &pb.ServerFrame_Receipt{Receipt: &pb.Receipt{
			Conversation: "dm:alice:bob", User: "bob", Status: "read", UpTo: 7123456789012345678}}},
		"history": {Body: &pb.ServerFrame_History{History: &pb.History{
			Id: "h1", Conversation: "group:g1", More: true,
			Messages: []*pb.Message{sMessage(0, 1, "", "g1"), sMessage(3, 2, "", "g1")}}}},
		"receipt all": {Body: &pb.ServerFrame_Receipt{Receipt: &pb.Receipt{
			Conversation: "group:g1", All: true, Status: "delivered", UpTo: 7}}},
		"history receipts": {Body: &pb.ServerFrame_History{History: &pb.History{
			Id: "h3", Conversation: "group:g1", Messages: []*pb.Message{sMessage(0, 1, "", "g1")},
			Receipts: []*pb.Receipt{{Conversation: "group:g1", All: true, Status: "delivered", UpTo: 1},
				{Conversation: "dm:a:b", User: "b", Status: "read", UpTo: 1}}}}},
		"history empty": {Body: &pb.ServerFrame_History{History: &pb.History{Id: "h2", Conversation: "dm:a:b"}}},
		"typing":        {Body: &pb.ServerFrame_Typing{Typing: &pb.TypingNotice{Conversation: "dm:alice:bob", From: "alice"}}},
		"presence": {Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{
			User: "bob", Status: "offline", LastSeen: 1700000000000}}},
		"pong":        {Body: &pb.ServerFrame_Pong{Pong: &pb.Pong{}}},
		"error":       {Body: &pb.ServerFrame_Error{Error: &pb.Error{Id: "c1", Code: "bad_request", Message: `missing "text"`}}},
		"error no id": {Body: &pb.ServerFrame_Error{Error: &pb.Error{Code: "rate_limited", Message: "slow down"}}},
	}
}
