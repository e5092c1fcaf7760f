package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleychat/parley/proto/parleypb"
)

type badCase struct {
	name, in string
	id       string // expected FrameError.ID
	msg      string // expected substring of the message
}

var badJSON = []badCase{
	{"empty", ``, "", "unparsable JSON"},
	{"garbage", `hello`, "", "unparsable JSON"},
	{"truncated", `{"type":"send","id":"c1"`, "", "unparsable JSON"},
	{"trailing", `{"type":"ping"} x`, "", "unparsable JSON"},
	{"array", `[1,2]`, "", "JSON object"},
	{"string", `"send"`, "", "JSON object"},
	{"number", `12`, "", "JSON object"},
	{"null", `null`, "", "JSON object"},
	{"no type", `{"id":"c1"}`, "c1", `missing "type"`},
	{"empty type", `{"type":""}`, "", `missing "type"`},
	{"unknown type", `{"type":"shout","id":"c9"}`, "c9", `unknown frame type "shout"`},
	{"type number", `{"type":1}`, "", `"type" must be a string`},
	{"send no id", `{"type":"send","to":"bob","text":"hi"}`, "", `missing "id"`},
	{"send id too long", `{"type":"send","id":"` + strings.Repeat("x", 65) + `","to":"bob","text":"hi"}`,
		strings.Repeat("x", 65), "65 characters"},
	{"send id NUL", `{"type":"send","id":"x\u0000","to":"bob","text":"hi"}`, "x\x00", "control character or invalid UTF-8 at byte 1"},
	{"send id newline", `{"type":"send","id":"a\nb","to":"bob","text":"hi"}`, "a\nb", "control character"},
	{"send id C1 control", `{"type":"send","id":"a\u0085","to":"bob","text":"hi"}`, "a\u0085", "control character"},
	{"send id number", `{"type":"send","id":5,"to":"bob","text":"hi"}`, "", `"id" must be a string`},
	{"send no text", `{"type":"send","id":"c1","to":"bob"}`, "c1", `missing "text"`},
	{"send empty text", `{"type":"send","id":"c1","to":"bob","text":""}`, "c1", `missing "text"`},
	{"send text number", `{"type":"send","id":"c1","to":"bob","text":5}`, "c1", `"text" must be a string`},
	{"send text wrong type before id", `{"type":"send","text":true,"id":"c1","to":"bob"}`, "c1", `"text" must be a string`},
	{"send no target", `{"type":"send","id":"c1","text":"hi"}`, "c1", `one of "to" or "group"`},
	{"send both targets", `{"type":"send","id":"c1","to":"bob","group":"g","text":"hi"}`, "c1", `only one of`},
	{"sync after word", `{"type":"sync","after":"abc"}`, "", `"after" must be a decimal integer`},
	{"sync after negative", `{"type":"sync","after":-1}`, "", `"after" must be a decimal integer`},
	{"sync after float", `{"type":"sync","after":1.5}`, "", `"after" must be a decimal integer`},
	{"sync after exp", `{"type":"sync","after":1e3}`, "", `"after" must be a decimal integer`},
	{"sync after empty", `{"type":"sync","after":""}`, "", `"after" must be a decimal integer`},
	{"sync after plus", `{"type":"sync","after":"+1"}`, "", `"after" must be a decimal integer`},
	{"sync after bool", `{"type":"sync","after":true}`, "", `"after" must be a decimal integer`},
	{"sync after overflow", `{"type":"sync","after":"18446744073709551616"}`, "", `out of range`},
	{"sync limit string", `{"type":"sync","limit":"5"}`, "", `"limit" must be a non-negative 32-bit integer`},
	{"sync limit negative", `{"type":"sync","limit":-5}`, "", `"limit" must be`},
	{"sync limit big", `{"type":"sync","limit":4294967296}`, "", `"limit" must be`},
	{"received no upTo", `{"type":"received"}`, "", `received: missing "upTo"`},
	{"received null upTo", `{"type":"received","upTo":null}`, "", `received: missing "upTo"`},
	{"received upTo object", `{"type":"received","upTo":{}}`, "", `"upTo" must be a decimal integer`},
	{"read no conversation", `{"type":"read","upTo":"5"}`, "", `read: missing "conversation"`},
	{"read no upTo", `{"type":"read","conversation":"dm:a:b"}`, "", `read: missing "upTo"`},
	{"read upTo too big", `{"type":"read","conversation":"dm:a:b","upTo":"9223372036854775808"}`, "", `out of range`},
	{"history no id", `{"type":"history","conversation":"dm:a:b"}`, "", `history: missing "id"`},
	{"history no conversation", `{"type":"history","id":"h1"}`, "h1", `history: missing "conversation"`},
	{"history before bad", `{"type":"history","id":"h1","conversation":"c","before":"x"}`, "h1", `"before" must be`},
	{"history before too big", `{"type":"history","id":"h1","conversation":"c","before":"9223372036854775808"}`, "h1", `out of range`},
	{"typing no target", `{"type":"typing"}`, "", `typing: one of "to" or "group"`},
	{"typing both", `{"type":"typing","to":"a","group":"g"}`, "", `only one of`},
	{"presence missing", `{"type":"presence"}`, "", `"online" or "away"`},
	{"presence offline", `{"type":"presence","status":"offline"}`, "", `got "offline"`},
	{"presence status number", `{"type":"presence","status":1}`, "", `"status" must be a string`},
	{"ping bad known member", `{"type":"ping","upTo":"x"}`, "", `"upTo" must be`},
}

func TestDecodeClientBadJSON(t *testing.T) {
	for _, tc := range badJSON {
		t.Run(tc.name, func(t *testing.T) {
			requireBad(t, JSON, []byte(tc.in), tc.id, tc.msg)
		})
	}
}

func TestDecodeClientBadProto(t *testing.T) {
	marshal := func(f *pb.ClientFrame) string {
		b, err := proto.Marshal(f)
		require.NoError(t, err)
		return string(b)
	}
	for _, tc := range []badCase{
		{"empty", "", "", "empty frame"},
		{"garbage", "\xff\xff\xff\xff", "", "unparsable protobuf"},
		{"truncated", marshal(cSend("c1", "bob", "", "hi"))[:5], "", "unparsable protobuf"},
		{"bad utf8", "\x0a\x04\x0a\x02c\xff", "", "unparsable protobuf"},
		{"unknown field only", "\x78\x01", "", "empty frame"},
		{"send no id", marshal(cSend("", "bob", "", "hi")), "", `missing "id"`},
		{"send id too long", marshal(cSend(strings.Repeat("é", 65), "bob", "", "hi")), strings.Repeat("é", 65), "65 characters"},
		{"send no text", marshal(cSend("c1", "bob", "", "")), "c1", `missing "text"`},
		{"send both", marshal(cSend("c1", "bob", "g", "hi")), "c1", "only one of"},
		{"read no conversation", marshal(cRead("", 5)), "", `missing "conversation"`},
		{"read negative", marshal(cRead("c", -5)), "", "negative"},
		{"history no conversation", marshal(cHistory("h1", "", 0, 0)), "h1", `missing "conversation"`},
		{"history negative before", marshal(cHistory("h1", "c", -1, 0)), "h1", "negative"},
		{"typing none", marshal(cTyping("", "")), "", `one of "to" or "group"`},
		{"presence bad", marshal(cPresence("busy")), "", `got "busy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireBad(t, Proto, []byte(tc.in), tc.id, tc.msg)
		})
	}
}

func requireBad(t *testing.T, enc Encoding, in []byte, id, msg string) {
	t.Helper()
	f, err := DecodeClient(enc, in)
	require.Nil(t, f)
	var fe *FrameError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "bad_request", fe.Code)
	require.Equal(t, id, fe.ID)
	require.Contains(t, fe.Message, msg)
	require.Contains(t, fe.Error(), fe.Message)
}

func TestDecodeClientUnknownEncoding(t *testing.T) {
	_, err := DecodeClient(Encoding(7), []byte(`{"type":"ping"}`))
	var fe *FrameError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "internal", fe.Code)
}

func TestDecodeServerBad(t *testing.T) {
	for _, in := range []string{``, `[]`, `null`, `{}`, `{"type":"nope"}`, `{"type":"sent","messageId":"x"}`,
		`{"type":"message","seq":-1}`, `{"type":"history","messages":[{"messageId":"1.5"}]}`, `{"type":"synced","upTo":"-1"}`} {
		_, err := DecodeServer(JSON, []byte(in))
		require.Error(t, err, in)
	}
	for _, in := range []string{"", "\xff\xff"} {
		_, err := DecodeServer(Proto, []byte(in))
		require.Error(t, err, "%q", in)
	}
}

// Client ids are stored as text: no control characters, no invalid UTF-8 (which
// JSON decoding turns into U+FFFD and protobuf refuses, but a check costs nothing).
func TestBadIDChar(t *testing.T) {
	for id, want := range map[string]int{
		"m-1": -1, "é😀": -1, "a\uFFFDb": -1, "ab\xff": 2, "\x00": 0, "a\tb": 1, "a\u007fb": 1, "a\u200eb": -1,
	} {
		require.Equal(t, want, badIDChar(id), "%q", id)
	}
}
