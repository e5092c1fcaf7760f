package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleychat/parley/proto/parleypb"
)

var encodings = []Encoding{JSON, Proto}

func TestParseEncoding(t *testing.T) {
	for in, want := range map[string]Encoding{"": JSON, "json": JSON, "proto": Proto} {
		got, err := ParseEncoding(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"JSON", "protobuf", "xml"} {
		_, err := ParseEncoding(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "json", JSON.String())
	require.Equal(t, "proto", Proto.String())
}

func TestClientRoundTrip(t *testing.T) {
	for name, f := range validClientFrames() {
		for _, enc := range encodings {
			t.Run(name+"/"+enc.String(), func(t *testing.T) {
				data, err := EncodeClient(enc, f)
				require.NoError(t, err)
				got, err := DecodeClient(enc, data)
				require.NoError(t, err, "%s", data)
				require.True(t, proto.Equal(f, got), "want %v\ngot  %v\nwire %s", f, got, data)
				require.Equal(t, TypeOf(f), TypeOf(got))
			})
		}
	}
}

func TestServerRoundTrip(t *testing.T) {
	for name, f := range validServerFrames() {
		for _, enc := range encodings {
			t.Run(name+"/"+enc.String(), func(t *testing.T) {
				data, err := EncodeServer(enc, f)
				require.NoError(t, err)
				got, err := DecodeServer(enc, data)
				require.NoError(t, err, "%s", data)
				require.True(t, proto.Equal(f, got), "want %v\ngot  %v\nwire %s", f, got, data)
			})
		}
	}
}

func TestTypeOf(t *testing.T) {
	require.Equal(t, "", TypeOf(nil))
	require.Equal(t, "", TypeOf(&pb.ClientFrame{}))
	for name, f := range validClientFrames() {
		require.True(t, strings.HasPrefix(name, TypeOf(f)), name)
	}
}

func TestEncodeEmpty(t *testing.T) {
	for _, enc := range encodings {
		_, err := EncodeClient(enc, &pb.ClientFrame{})
		require.Error(t, err)
		_, err = EncodeServer(enc, nil)
		require.Error(t, err)
	}
	_, err := EncodeServer(Encoding(9), validServerFrames()["pong"])
	require.Error(t, err)
}

func TestEncodeServerGolden(t *testing.T) {
	f := validServerFrames()
	for _, tc := range []struct{ name, want string }{
		{"sent", `{"type":"sent","id":"c1","messageId":"7123456789012345678","conversation":"dm:alice:bob","ts":1700000000000}`},
		{"message dm", `{"type":"message","seq":"42","messageId":"7123456789012345678","conversation":"dm:alice:bob",` +
			`"from":"alice","to":"bob","text":"hi there","ts":1700000000000,"clientId":"c1"}`},
		{"message zero", `{"type":"message","seq":"0","messageId":"0","conversation":"","from":"","text":"","ts":0}`},
		{"synced empty", `{"type":"synced","upTo":"0","more":false}`},
		{"receipt", `{"type":"receipt","conversation":"dm:alice:bob","user":"bob","status":"read","upTo":"7123456789012345678"}`},
		{"history empty", `{"type":"history","id":"h2","conversation":"dm:a:b","messages":[],"more":false}`},
		{"history", `{"type":"history","id":"h1","conversation":"group:g1","messages":[` +
			`{"messageId":"1","conversation":"group:g1","from":"alice","group":"g1","text":"hi there","ts":1700000000000,"clientId":"c1"},` +
			`{"seq":"3","messageId":"2","conversation":"group:g1","from":"alice","group":"g1","text":"hi there","ts":1700000000000,"clientId":"c1"}` +
			`],"more":true}`},
		{"typing", `{"type":"typing","conversation":"dm:alice:bob","from":"alice"}`},
		{"presence", `{"type":"presence","user":"bob","status":"offline","lastSeen":1700000000000}`},
		{"pong", `{"type":"pong"}`},
		{"error", `{"type":"error","id":"c1","code":"bad_request","message":"missing \"text\""}`},
		{"error no id", `{"type":"error","code":"rate_limited","message":"slow down"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeServer(JSON, f[tc.name])
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
			require.Equal(t, tc.want, string(got), "member order and spacing")
		})
	}
}

func TestEncodeClientGolden(t *testing.T) {
	for _, tc := range []struct {
		f    *pb.ClientFrame
		want string
	}{
		{cSend("c1", "bob", "", "hi"), `{"type":"send","id":"c1","to":"bob","text":"hi"}`},
		{cSync(nil, 0), `{"type":"sync"}`},
		{cSync(u64(0), 10), `{"type":"sync","after":"0","limit":10}`},
		{cReceived(18446744073709551615), `{"type":"received","upTo":"18446744073709551615"}`},
		{cRead("dm:alice:bob", 5), `{"type":"read","conversation":"dm:alice:bob","upTo":"5"}`},
		{cHistory("h1", "group:g1", 9, 20), `{"type":"history","id":"h1","conversation":"group:g1","before":"9","limit":20}`},
		{cHistory("h1", "group:g1", 0, 0), `{"type":"history","id":"h1","conversation":"group:g1"}`},
		{cTyping("", "g1"), `{"type":"typing","group":"g1"}`},
		{cPresence("away"), `{"type":"presence","status":"away"}`},
		{cPing(), `{"type":"ping"}`},
	} {
		got, err := EncodeClient(JSON, tc.f)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got))
	}
}

func TestStringEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           `"plain"`,
		"q\"b\\s/":        `"q\"b\\s/"`,
		"\n\r\t\x00\x1f":  `"\n\r\t\u0000\u001f"`,
		"<&>":             `"<&>"`,
		"a\u2028b\u2029":  `"a\u2028b\u2029"`,
		"bad\xffutf8\xc3": `"bad\ufffdutf8\ufffd"`,
		"ünï 🎉":           `"ünï 🎉"`,
	} {
		require.Equal(t, want, string(appendString(nil, in)), "%q", in)
	}
}

func TestDecodeClientJSON(t *testing.T) {
	decode := func(s string) *pb.ClientFrame {
		t.Helper()
		f, err := DecodeClient(JSON, []byte(s))
		require.NoError(t, err, s)
		return f
	}
	f := decode(`{"type":"send","id":"c1","to":"bob","text":"hi"}`)
	require.True(t, proto.Equal(cSend("c1", "bob", "", "hi"), f))

	require.Nil(t, decode(`{"type":"sync"}`).GetSync().After)
	require.Nil(t, decode(`{"type":"sync","after":null}`).GetSync().After)
	after := decode(`{"type":"sync","after":"0"}`).GetSync().After
	require.NotNil(t, after)
	require.Zero(t, *after)
	require.Equal(t, uint64(12), decode(`{"type":"sync","after":"12","limit":100}`).GetSync().GetAfter())

	// Lenient: numbers for ids and seqs; unknown members ignored; whitespace.
	require.Equal(t, uint64(42), decode(`{"type":"received","upTo":42}`).GetReceived().GetUpTo())
	require.Equal(t, uint64(18446744073709551615),
		decode(`{"type":"received","upTo":"18446744073709551615"}`).GetReceived().GetUpTo())
	require.Equal(t, int64(7123456789012345678),
		decode(`{"type":"read","conversation":"dm:a:b","upTo":7123456789012345678}`).GetRead().GetUpTo())
	require.Equal(t, int64(5), decode(`{"type":"history","id":"h","conversation":"c","before":5}`).GetHistory().GetBefore())
	require.NotNil(t, decode(` {"type":"ping","extra":{"x":[1,2]},"v":2} `).GetPing())
	require.Equal(t, "online", decode(`{"status":"online","type":"presence"}`).GetPresence().GetStatus())
}

// MessageJSON writes a message exactly as a history frame does, so REST and
// WebSocket history agree byte for byte.
func TestMessageJSONMatchesHistory(t *testing.T) {
	m := &pb.Message{MessageId: 383280997669535744, Conversation: "dm:alice:bob", From: "alice", To: "bob",
		Text: "hé \"quoted\"", Ts: 1700000000000, ClientId: "c1"}
	frame, err := EncodeServer(JSON, &pb.ServerFrame{Body: &pb.ServerFrame_History{History: &pb.History{
		Id: "h", Conversation: m.Conversation, Messages: []*pb.Message{m}}}})
	require.NoError(t, err)
	var h struct {
		Messages []json.RawMessage `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(frame, &h))
	require.Len(t, h.Messages, 1)
	require.Equal(t, string(h.Messages[0]), string(MessageJSON(m)))
	require.JSONEq(t, `{"messageId":"383280997669535744","conversation":"dm:alice:bob","from":"alice","to":"bob",
		"text":"hé \"quoted\"","ts":1700000000000,"clientId":"c1"}`, string(MessageJSON(m)))
}

// A message written with a seq of its own encodes as the frame of a copy with that
// seq, in both encodings, and the message is left as it was (one message is written
// to many sockets at once).
func TestEncodeMessageStampsSeq(t *testing.T) {
	for _, stored := range []uint64{0, 7, 9} {
		m := &pb.Message{Seq: stored, MessageId: 383280997669535744, Conversation: "dm:alice:bob", From: "alice",
			To: "bob", Text: "héllo \"x\"", Ts: 1700000000000, ClientId: "c1"}
		before := proto.Clone(m)
		want := proto.Clone(m).(*pb.Message)
		want.Seq = 7
		for _, enc := range []Encoding{JSON, Proto} {
			got, err := EncodeMessage(enc, m, 7)
			require.NoError(t, err)
			exp, err := EncodeServer(enc, &pb.ServerFrame{Body: &pb.ServerFrame_Message{Message: want}})
			require.NoError(t, err)
			require.Equal(t, exp, got, "%s, stored seq %d", enc, stored)
			f, err := DecodeServer(enc, got)
			require.NoError(t, err)
			require.True(t, proto.Equal(want, f.GetMessage()), "%s", enc)
		}
		require.True(t, proto.Equal(before, m), "the message is unchanged")
	}
}

// What Parley's own clients write for received and read (wire.EncodeClient) takes
// the acknowledgements' fast path, and decodes to the frame encoded.
func TestAcksTakeTheFastPath(t *testing.T) {
	for _, f := range []*pb.ClientFrame{
		{Body: &pb.ClientFrame_Received{Received: &pb.Received{UpTo: 1234567}}},
		{Body: &pb.ClientFrame_Received{Received: &pb.Received{}}},
		{Body: &pb.ClientFrame_Read{Read: &pb.Read{Conversation: "dm:alice:bob", UpTo: 7123456789012345678}}},
		{Body: &pb.ClientFrame_Read{Read: &pb.Read{Conversation: "group:01J9Z", UpTo: 1}}},
	} {
		data, err := EncodeClient(JSON, f)
		require.NoError(t, err)
		got := decodeAckJSON(data)
		require.NotNil(t, got, "%s", data)
		require.True(t, proto.Equal(f, got), "%s: %v", data, got)
	}
}
