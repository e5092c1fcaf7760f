package loadgen

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// viewOf is an inFrame with strings, to compare two of them.
type frameView struct {
	Kind                           frameKind
	Seq, UpTo, Prev                uint64
	More                           bool
	ID, From, ClientID, Code, Text string
}

func viewOf(f *inFrame) frameView {
	return frameView{f.kind, f.seq, f.upTo, f.prev, f.more, string(f.id), string(f.from), string(f.clientID), string(f.code), string(f.text)}
}

// fullDecode is what the full decoder makes of data.
func fullDecode(t testing.TB, data []byte) (frameView, bool) {
	sf, err := wire.DecodeServer(wire.JSON, data)
	if err != nil {
		return frameView{}, false
	}
	var f inFrame
	fromProto(sf, &f)
	return viewOf(&f), true
}

// requireAgrees checks that the fast scan, when it takes data, reads what the
// full decoder does, and reports whether it took it.
func requireAgrees(t testing.TB, data []byte) bool {
	var f inFrame
	fast := scanJSON(data, &f)
	full, ok := fullDecode(t, data)
	if fast && ok {
		require.Equal(t, full, viewOf(&f), "%s", data)
	}
	return fast
}

func encodeJSON(t testing.TB, f *parleypb.ServerFrame) []byte {
	b, err := wire.EncodeServer(wire.JSON, f)
	require.NoError(t, err)
	return b
}

func msgFrame(m *parleypb.Message) *parleypb.ServerFrame {
	return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}}
}

// TestScanAgreesOnServerFrames: on frames from internal/wire's encoder, the fast
// scan reads what the full decoder reads, and takes every frame loadgen sees in
// a run (so that a run never falls back to the slow path).
func TestScanAgreesOnServerFrames(t *testing.T) {
	plain := "lg1a2b3c4d.1.2"
	for _, c := range []struct {
		name string
		f    *parleypb.ServerFrame
		fast bool // the fast scan must take it
	}{
		{"message 1:1", msgFrame(&parleypb.Message{Seq: 42, MessageId: 383280997669535744, Conversation: "dm:a:b",
			From: "lg-0-1", To: "lg-0-0", Text: messageText, Ts: 1764590000000, ClientId: plain}), true},
		{"message to a group, max seq", msgFrame(&parleypb.Message{Seq: math.MaxUint64, MessageId: math.MaxInt64,
			Conversation: "g:123", From: "lg-0-1", Group: "123", Text: "x", Ts: -1, ClientId: plain}), true},
		{"message without a client id", msgFrame(&parleypb.Message{Seq: 1, From: "a", Text: "t"}), true},
		{"message text with escapes", msgFrame(&parleypb.Message{Seq: 7, From: "a", Text: "a \"quote\" \\ \n\t\u2028 \x01 é 😀 \xff",
			ClientId: plain}), true},
		{"sent", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{Id: plain,
			MessageId: 383280997669535744, Conversation: "dm:a:b", Ts: 1764590000000}}}, true},
		{"synced", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{UpTo: 12345, More: true}}}, true},
		{"synced at zero", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{}}}, true},
		{"error", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{Id: plain,
			Code: "unavailable", Message: "the commit is unconfirmed"}}}, true},
		{"error without an id", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
			Code: "bad_request", Message: "no"}}}, true},
		{"error text with a quote", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
			Code: "bad_request", Message: `send: missing "id"`}}}, false},
		{"receipt", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Receipt{Receipt: &parleypb.Receipt{
			Conversation: "dm:a:b", User: "b", Status: "read", UpTo: 9}}}, true},
		{"history", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_History{History: &parleypb.History{Id: "h1",
			Conversation: "dm:a:b", More: true, Messages: []*parleypb.Message{
				{MessageId: 1, From: "a", Text: "one \"1\"", Ts: 1}, {Seq: 3, MessageId: 2, From: "b", Text: "}]", Ts: 2}}}}}, true},
		{"typing", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Typing{Typing: &parleypb.TypingNotice{
			Conversation: "dm:a:b", From: "a"}}}, true},
		{"presence", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Presence{Presence: &parleypb.Presence{
			User: "a", Status: "online", LastSeen: 5}}}, true},
		{"pong", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}}, true},
		{"live channel message", msgFrame(&parleypb.Message{MessageId: 383280997669535745, Conversation: "channel:abcdefghijklmnop",
			From: "lg-0-50", Channel: "abcdefghijklmnop", Text: "lg1a2b3c4d.1.2 loadgen channel post", Ts: 1764590000000,
			ClientId: plain, Prev: 383280997669535744}), true},
		{"first live channel message", msgFrame(&parleypb.Message{MessageId: 5, Conversation: "channel:abcdefghijklmnop",
			From: "o", Channel: "abcdefghijklmnop", Text: "t"}), true},
		{"channels", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Channels{Channels: &parleypb.Channels{
			Channels: []*parleypb.ChannelState{{Channel: "channel:abcdefghijklmnop", Id: "abcdefghijklmnop", Name: "n \"1\"",
				Mode: "broadcast", Role: "member", LastMessageId: 9, ReadUpTo: 3, Unread: 6}, {Channel: "channel:x", Id: "x"}}}}}, true},
		{"no channels", &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Channels{Channels: &parleypb.Channels{}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := encodeJSON(t, c.f)
			_, ok := fullDecode(t, data)
			require.True(t, ok, "%s", data)
			require.Equal(t, c.fast, requireAgrees(t, data), "fast path taken: %s", data)
		})
	}
}

// TestScanAgreesOnRandomMessages: message frames with random texts, names and
// numbers, as the encoder writes them.
func TestScanAgreesOnRandomMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	alphabet := []rune("abcXYZ019-._:\"\\/\n\t\x00\x1f é€😀\u2028\ufffd")
	str := func(n int) string {
		var b strings.Builder
		for range r.IntN(n) {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	fast := 0
	for range 2000 {
		data := encodeJSON(t, msgFrame(&parleypb.Message{Seq: r.Uint64() >> r.IntN(64), MessageId: r.Int64(),
			Conversation: str(20), From: str(8), To: str(8), Group: str(4), Text: str(60), Ts: r.Int64() - r.Int64(),
			ClientId: str(16)}))
		_, ok := fullDecode(t, data)
		require.True(t, ok, "%s", data)
		if requireAgrees(t, data) {
			fast++
		}
	}
	require.Positive(t, fast, "some frames need no escape in the members read")
}

// TestScanRefuses: what the fast scan leaves to the full decoder.
func TestScanRefuses(t *testing.T) {
	for _, data := range []string{
		``, `[]`, `{}`, `{"type":"message"`, `{"type":"message"} x`, `{"type":"message",}`,
		`{"type":"sent","id":"a\"b"}`, `{"type":"message","from":"\u0061"}`, `{"Type":"sent"}`, `{"ID":"x","type":"sent"}`,
		`{"type":"message","seq":"1 "}`, `{"type":"message","seq":-1}`, `{"type":"message","seq":"18446744073709551616"}`,
		`{"type":"message","seq":null}`, `{"type":"synced","more":1}`, `{"type":"message","x":tru}`,
		`{"type":"message","from":"` + "\xff" + `"}`, `{"tyṗe":"sent"}`, `{"type":"sent","x":1.}`, `{"type":"sent","x":[1,}`,
	} {
		var f inFrame
		require.False(t, scanJSON([]byte(data), &f), "%s", data)
	}
	var f inFrame
	require.True(t, scanJSON([]byte(` {"x":[{"y":[true,null,-1.5e+3]}],"type":"synced","upTo":7,"more":false} `), &f))
	require.Equal(t, frameView{Kind: kindSynced, UpTo: 7}, viewOf(&f))
}

// FuzzScanJSON: whatever the input, when both the fast scan and the full
// decoder take it, they read the same.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"type":"message","seq":"1","from":"a","clientId":"r.1.2","text":"x"}`,
		`{"type":"sent","id":"r.1.2","messageId":"5","ts":1}`, `{"type":"synced","upTo":"3","more":true}`,
		`{"type":"error","id":"r.1.2","code":"unavailable","message":"m"}`, `{"type":"history","messages":[{"seq":"1"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { requireAgrees(t, data) })
}

// TestChannelFrames: the fast scan and the full decoder give a channel worker
// the same channels answer and the same post (number, send time, prev).
func TestChannelFrames(t *testing.T) {
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioChannel, Conns: 1, Members: 3, Encoding: "json", RunID: "r5",
		ChannelName: `loadgen "x"`})
	answer := &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Channels{Channels: &parleypb.Channels{
		Channels: []*parleypb.ChannelState{{Id: "other", Name: "other", LastMessageId: 1},
			{Id: "abcdefghijklmnop", Name: `loadgen "x"`, LastMessageId: 77}}}}}
	post := msgFrame(&parleypb.Message{MessageId: 78, Channel: "abcdefghijklmnop", From: "o", Prev: 77,
		Text: w.postText(3, 1500*time.Millisecond), ClientId: w.clientID(3, 1500*time.Millisecond)})
	for _, enc := range []wire.Encoding{wire.JSON, wire.Proto} {
		t.Run(enc.String(), func(t *testing.T) {
			var f inFrame
			b, err := wire.EncodeServer(enc, answer)
			require.NoError(t, err)
			fast, err := decodeFrame(enc, b, &f)
			require.NoError(t, err)
			require.Equal(t, enc == wire.JSON, fast)
			states, err := channelStates(&f)
			require.NoError(t, err)
			require.Equal(t, []channelOf{{ID: "other", Name: "other", Last: "1"}, {ID: "abcdefghijklmnop", Name: `loadgen "x"`, Last: "77"}}, states)

			b, err = wire.EncodeServer(enc, post)
			require.NoError(t, err)
			_, err = decodeFrame(enc, b, &f)
			require.NoError(t, err)
			require.Equal(t, kindMessage, f.kind)
			require.Equal(t, uint64(77), f.prev)
			n, sent, ok := w.parsePost(f.body)
			require.True(t, ok)
			require.Equal(t, uint64(3), n)
			require.Equal(t, w.ch.baseUnix+int64(1500*time.Millisecond), sent)
		})
	}
	_, _, ok := w.parsePost([]byte("r6.3.4 another run"))
	require.False(t, ok)
}
