package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/parleychat/parley/proto/parleypb"
)

// The fuzz targets of the frame codec. Their seeds (f.Add below and the files in
// testdata/fuzz/<target>) run with every go test; `make fuzz-short` fuzzes each
// for a few seconds. To fuzz one for longer:
//
//	go test -run '^$' -fuzz '^FuzzDecodeClientJSON$' -fuzztime 5m ./internal/wire

// FuzzDecodeClientJSON feeds arbitrary text frames to the JSON decoder; see
// checkDecode for what must hold.
func FuzzDecodeClientJSON(f *testing.F) {
	for _, tc := range badJSON {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		`{"type":"sync","after":"0","limit":5}`, `{"type":"received","upTo":42}`,
		`{"type":"read","conversation":"dm:a:b","upTo":"9"}`, `{"type":"ping","x":[{}]}`,
		`{"type":"received","upTo":"18446744073709551616"}`, `{"type":"received","upTo":""}`,
		`{"type":"read","conversation":"dm:a:b","upTo":9223372036854775808}`,
		`{"type":"read","conversation":"dm:a","upTo":"1","upTo":2}`, `{"type":"received","upTo":"1"}}`,
		`{"type":"read","conversation":"0","upTo":000000}`, `{"type":"received","upTo":"007"}`,
		`{"type":"send","id":"\u00e9\ud800","group":"g","text":"\u2028\"\\"}`,
		`{"TYPE":"send","Id":"c1","TO":"bob","text":"hi"}`, `{"type":"ping","type":"presence","status":"away"}`,
	} {
		f.Add([]byte(s))
	}
	addEncoded(f, JSON)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, JSON, data)
		checkAckFastPath(t, data)
	})
}

// checkAckFastPath: what the acknowledgements' fast path decodes, the full decoder
// decodes the same, and validates.
func checkAckFastPath(t *testing.T, data []byte) {
	fast := decodeAckJSON(data)
	if fast == nil {
		return
	}
	full, err := decodeFullJSON(data)
	if err != nil {
		t.Fatalf("%q: the fast path decoded %v, the full decoder refused it: %v", data, fast, err)
	}
	if !proto.Equal(fast, full) {
		t.Fatalf("%q: the fast path decoded %v, the full decoder %v", data, fast, full)
	}
}

// FuzzDecodeClientProto feeds arbitrary binary frames to the protobuf decoder;
// see checkDecode for what must hold.
func FuzzDecodeClientProto(f *testing.F) {
	for _, s := range []string{"", "\xff\xff\xff\xff", "\x78\x01", "\x0a\x04\x0a\x02c\xff"} {
		f.Add([]byte(s))
	}
	addEncoded(f, Proto)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, Proto, data)
	})
}

// addEncoded adds every valid client frame of the tests, encoded with enc.
func addEncoded(f *testing.F, enc Encoding) {
	for _, fr := range validClientFrames() {
		b, err := EncodeClient(enc, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkDecode decodes data with enc. The decoder must not panic, and it must
// return either a frame or a bad_request *FrameError (DecodeClient's contract)
// that the server can echo in an error frame of the same encoding. A frame must
// satisfy the checks of validate, and survive encoding and decoding, in both
// encodings, unchanged.
func checkDecode(t *testing.T, enc Encoding, data []byte) {
	fr, err := DecodeClient(enc, data)
	if err != nil {
		checkFrameError(t, enc, data, fr, err)
		return
	}
	if fr == nil {
		t.Fatalf("%s: no frame and no error for %q", enc, data)
	}
	checkValid(t, fr)
	for _, out := range encodings {
		b, err := EncodeClient(out, fr)
		if err != nil {
			t.Fatalf("%s->%s: encoding %v: %v", enc, out, fr, err)
		}
		back, err := DecodeClient(out, b)
		if err != nil {
			t.Fatalf("%s->%s: decoding %q: %v", enc, out, b, err)
		}
		if !proto.Equal(fr, back) {
			t.Fatalf("%s->%s: %v became %v (wire %q)", enc, out, fr, back, b)
		}
	}
}

// checkFrameError checks a refused frame. For JSON, the gateway refuses a text
// frame that is not UTF-8 before decoding it, so the error frame must come back
// unchanged only for UTF-8 input.
func checkFrameError(t *testing.T, enc Encoding, data []byte, fr *pb.ClientFrame, err error) {
	fe, ok := err.(*FrameError)
	switch {
	case !ok:
		t.Fatalf("%s: %q: an error that is no *FrameError: %T %v", enc, data, err, err)
	case fr != nil:
		t.Fatalf("%s: %q: both a frame and an error", enc, data)
	case fe.Code != CodeBadRequest || fe.Message == "":
		t.Fatalf("%s: %q: want a bad_request error with a message, got %#v", enc, data, fe)
	}
	answer := &pb.ServerFrame{Body: &pb.ServerFrame_Error{Error: &pb.Error{Id: fe.ID, Code: fe.Code, Message: fe.Message}}}
	b, err := EncodeServer(enc, answer)
	if err != nil {
		t.Fatalf("%s: %q: the error frame for %#v does not encode: %v", enc, data, fe, err)
	}
	if enc == JSON && !utf8.Valid(data) {
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("%q: the error frame is no UTF-8 JSON: %q", data, b)
		}
		return
	}
	back, err := DecodeServer(enc, b)
	if err != nil || !proto.Equal(answer, back) {
		t.Fatalf("%s: %q: the error frame %v came back as %v, %v", enc, data, answer, back, err)
	}
}

// checkValid restates validate's rules, so that a frame it lets through by
// mistake fails here.
func checkValid(t *testing.T, fr *pb.ClientFrame) {
	switch b := fr.GetBody().(type) {
	case *pb.ClientFrame_Send:
		s := b.Send
		checkClientID(t, s.GetId())
		if s.GetText() == "" {
			t.Fatalf("accepted a send without text: %v", fr)
		}
		checkOneTarget(t, fr, s.GetTo(), s.GetGroup(), s.GetChannel())
	case *pb.ClientFrame_Read:
		if b.Read.GetConversation() == "" || b.Read.GetUpTo() < 0 {
			t.Fatalf("accepted a read without a conversation or with a negative upTo: %v", fr)
		}
	case *pb.ClientFrame_History:
		h := b.History
		if h.GetId() == "" || h.GetConversation() == "" || h.GetBefore() < 0 || h.GetAfter() < 0 {
			t.Fatalf("accepted a history without an id or a conversation, or with a negative before or after: %v", fr)
		}
	case *pb.ClientFrame_Typing:
		checkOneTarget(t, fr, b.Typing.GetTo(), b.Typing.GetGroup(), "")
	case *pb.ClientFrame_Presence:
		if s := b.Presence.GetStatus(); s != "online" && s != "away" {
			t.Fatalf("accepted a presence with status %q", s)
		}
	case *pb.ClientFrame_Sync, *pb.ClientFrame_Received, *pb.ClientFrame_Ping, *pb.ClientFrame_Channels:
	default:
		t.Fatalf("accepted a frame without a known body: %T", b)
	}
}

// checkClientID: 1 to 64 characters of UTF-8, none of them a control character.
func checkClientID(t *testing.T, id string) {
	n := utf8.RuneCountInString(id)
	if n == 0 || n > maxClientID || !utf8.ValidString(id) {
		t.Fatalf("accepted a send id of %d characters (UTF-8: %t): %q", n, utf8.ValidString(id), id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			t.Fatalf("accepted a send id with control character %U: %q", r, id)
		}
	}
}

// checkOneTarget fails unless exactly one of the targets is set (typing has no
// channel: it passes "").
func checkOneTarget(t *testing.T, fr *pb.ClientFrame, targets ...string) {
	set := 0
	for _, s := range targets {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		t.Fatalf("accepted a frame without exactly one of to, group and channel: %v", fr)
	}
}

// FuzzEncodeMessage writes a message with arbitrary strings and numbers, stored
// with one seq and written with another, as every socket of a fan-out does. The
// message must stay unchanged, and each encoding must give the bytes of
// EncodeServer for the message with the written seq. JSON must be UTF-8 JSON
// (invalid UTF-8 written as U+FFFD, byte by byte) that decodes to that message;
// protobuf must refuse invalid UTF-8 and otherwise decode to the message exactly.
// MessageJSON must be UTF-8 JSON too.
func FuzzEncodeMessage(f *testing.F) {
	for _, fr := range validServerFrames() {
		if m := fr.GetMessage(); m != nil {
			f.Add(m.Seq, m.Seq+1, m.MessageId, m.Ts, m.Conversation, m.From, m.To, m.Group, m.Text, m.ClientId)
		}
	}
	f.Add(uint64(9), uint64(9), int64(-1), int64(-1), "dm:a:b", "a\x00", "b\u2028", "", "\"\\\n\t<&>\x7f", "c\xff")
	f.Fuzz(func(t *testing.T, stored, seq uint64, id, ts int64, conv, from, to, group, text, clientID string) {
		m := &pb.Message{Seq: stored, MessageId: id, Conversation: conv, From: from, To: to, Group: group,
			Text: text, Ts: ts, ClientId: clientID}
		before := proto.Clone(m)
		want := proto.Clone(m).(*pb.Message)
		want.Seq = seq
		frame := &pb.ServerFrame{Body: &pb.ServerFrame_Message{Message: want}}

		b := checkEncodeMessage(t, JSON, m, seq, frame)
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("JSON: no UTF-8 JSON: %q", b)
		}
		checkDecodedMessage(t, JSON, b, replaceInvalid(want))
		if mj := MessageJSON(m); !json.Valid(mj) || !utf8.Valid(mj) {
			t.Fatalf("MessageJSON: no UTF-8 JSON: %q", mj)
		}

		valid := true
		for _, s := range []string{conv, from, to, group, text, clientID} {
			valid = valid && utf8.ValidString(s)
		}
		if !valid {
			if _, err := EncodeMessage(Proto, m, seq); err == nil {
				t.Fatalf("proto: encoded invalid UTF-8: %v", m)
			}
		} else {
			checkDecodedMessage(t, Proto, checkEncodeMessage(t, Proto, m, seq, frame), want)
		}
		if !proto.Equal(before, m) {
			t.Fatalf("the message changed: %v became %v", before, m)
		}
	})
}

// checkEncodeMessage encodes m with seq and returns the bytes, which must be those
// of EncodeServer(frame).
func checkEncodeMessage(t *testing.T, enc Encoding, m *pb.Message, seq uint64, frame *pb.ServerFrame) []byte {
	b, err := EncodeMessage(enc, m, seq)
	if err != nil {
		t.Fatalf("%s: encoding %v with seq %d: %v", enc, m, seq, err)
	}
	exp, err := EncodeServer(enc, frame)
	if err != nil {
		t.Fatalf("%s: encoding %v: %v", enc, frame, err)
	}
	if !bytes.Equal(b, exp) {
		t.Fatalf("%s: EncodeMessage wrote %q, EncodeServer %q", enc, b, exp)
	}
	return b
}

func checkDecodedMessage(t *testing.T, enc Encoding, b []byte, want *pb.Message) {
	f, err := DecodeServer(enc, b)
	if err != nil {
		t.Fatalf("%s: decoding %q: %v", enc, b, err)
	}
	if !proto.Equal(want, f.GetMessage()) {
		t.Fatalf("%s: want %v, decoded %v (wire %q)", enc, want, f.GetMessage(), b)
	}
}

// replaceInvalid is m with each byte of invalid UTF-8 in its strings replaced by
// U+FFFD, as the JSON encoder writes them.
func replaceInvalid(m *pb.Message) *pb.Message {
	c := proto.Clone(m).(*pb.Message)
	for _, s := range []*string{&c.Conversation, &c.From, &c.To, &c.Group, &c.Text, &c.ClientId} {
		*s = string([]rune(*s))
	}
	return c
}
