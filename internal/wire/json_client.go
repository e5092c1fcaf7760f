package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"

	"github.com/parleychat/parley/proto/parleypb"
)

// clientJSON is every member a client frame may carry. Strings treat "" as
// absent, as proto3 does; ids and seqs are kept raw to accept both a decimal
// string and a number.
type clientJSON struct {
	Type         string          `json:"type"`
	ID           string          `json:"id"`
	To           string          `json:"to"`
	Group        string          `json:"group"`
	Channel      string          `json:"channel"`
	Text         string          `json:"text"`
	Conversation string          `json:"conversation"`
	Status       string          `json:"status"`
	After        json.RawMessage `json:"after"`
	UpTo         json.RawMessage `json:"upTo"`
	Before       json.RawMessage `json:"before"`
	Limit        uint32          `json:"limit"`
}

// channelsFrame is the one ChannelsRequest a client frame needs (it has no fields).
var channelsFrame = &parleypb.ChannelsRequest{}

// numField is a parsed optional id or seq member.
type numField struct {
	v   uint64
	set bool
}

func decodeClientJSON(data []byte) (*parleypb.ClientFrame, *FrameError) {
	if f := decodeAckJSON(data); f != nil {
		return f, nil
	}
	return decodeFullJSON(data)
}

// decodeFullJSON decodes any client frame with encoding/json.
func decodeFullJSON(data []byte) (*parleypb.ClientFrame, *FrameError) {
	var j clientJSON
	if err := json.Unmarshal(data, &j); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case !errors.As(err, &te):
			return nil, badRequest("", "unparsable JSON: %v", err)
		case !isObject(data):
			return nil, badRequest("", "frame must be a JSON object, got %s", te.Value)
		}
		return nil, badRequest(j.ID, "%q must be %s, got %s", te.Field, kindName(te.Type), te.Value)
	}
	if !isObject(data) {
		return nil, badRequest("", "frame must be a JSON object")
	}
	f, fe := j.frame()
	if fe == nil {
		fe = validate(f)
	}
	if fe != nil {
		fe.ID = j.ID
		return nil, fe
	}
	return f, nil
}

// decodeAckJSON decodes, without encoding/json, the acknowledgements in the shape
// Parley's clients write them: {"type":"received","upTo":"N"} and
// {"type":"read","conversation":"C","upTo":"N"}, N quoted or not, C with nothing
// escaped. They are the most frequent client frames (a received per
// message delivered). Anything else, another member order or spacing included, is
// nil: the full decoder takes it and gives what this would have.
func decodeAckJSON(data []byte) *parleypb.ClientFrame {
	const received, read, upTo = `{"type":"received","upTo":`, `{"type":"read","conversation":"`, `","upTo":`
	if len(data) == 0 || data[len(data)-1] != '}' {
		return nil
	}
	switch {
	case bytes.HasPrefix(data, []byte(received)):
		v, ok := ackNum(data[len(received) : len(data)-1])
		if !ok {
			return nil
		}
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: v}}}
	case bytes.HasPrefix(data, []byte(read)):
		rest := data[len(read) : len(data)-1]
		i := bytes.Index(rest, []byte(upTo))
		if i < 0 || !plainString(rest[:i]) {
			return nil
		}
		v, ok := ackNum(rest[i+len(upTo):])
		if !ok || v > math.MaxInt64 {
			return nil
		}
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{
			Conversation: string(rest[:i]), UpTo: int64(v)}}}
	}
	return nil
}

// ackNum parses an acknowledgement's upTo as the full decoder would: a decimal
// string, or a JSON number of plain digits (which has no leading zero).
func ackNum(raw []byte) (uint64, bool) {
	if len(raw) > 1 && raw[0] == '0' {
		return 0, false // no JSON number: the full decoder says so
	}
	v, err := parseUint(raw)
	return v, err == nil
}

// plainString reports b non-empty and made of bytes a JSON string holds as they
// are, so that b is the string's value.
func plainString(b []byte) bool {
	for _, c := range b {
		if !literal(c) {
			return false
		}
	}
	return len(b) > 0
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Uint32:
		return "a non-negative 32-bit integer"
	}
	return "a " + t.String()
}

// frame maps the members to a ClientFrame. Every id or seq member present is
// checked, whatever the frame type, as wrongly typed string members are.
func (j *clientJSON) frame() (*parleypb.ClientFrame, *FrameError) {
	var nums [3]numField
	for i, m := range [3]struct {
		name string
		raw  json.RawMessage
	}{{"after", j.After}, {"upTo", j.UpTo}, {"before", j.Before}} {
		if isNull(m.raw) {
			continue
		}
		v, err := parseUint(m.raw)
		if err != nil {
			return nil, badRequest("", "%q %v, got %s", m.name, err, clip(string(m.raw)))
		}
		nums[i] = numField{v, true}
	}
	return j.body(nums[0], nums[1], nums[2])
}

func (j *clientJSON) body(after, upTo, before numField) (*parleypb.ClientFrame, *FrameError) {
	switch j.Type {
	case "":
		return nil, badRequest("", `missing "type"`)
	case "send":
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
			Id: j.ID, To: j.To, Group: j.Group, Channel: j.Channel, Text: j.Text}}}, nil
	case "sync":
		s := &parleypb.Sync{Limit: j.Limit}
		if after.set {
			s.After = &after.v
		}
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: s}}, nil
	case "received":
		if !upTo.set {
			return nil, badRequest("", `received: missing "upTo"`)
		}
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{
			UpTo: upTo.v}}}, nil
	case "read":
		return j.read(upTo)
	case "history":
		if before.v > math.MaxInt64 || after.v > math.MaxInt64 {
			return nil, badRequest("", `history: "before" or "after" is out of range`)
		}
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
			Id: j.ID, Conversation: j.Conversation, Before: int64(before.v), After: int64(after.v), Limit: j.Limit}}}, nil
	case "channels":
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Channels{Channels: channelsFrame}}, nil
	case "typing":
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Typing{Typing: &parleypb.Typing{
			To: j.To, Group: j.Group}}}, nil
	case "presence":
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{
			Status: j.Status}}}, nil
	case "ping":
		return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}, nil
	}
	return nil, badRequest("", "unknown frame type %q", clip(j.Type))
}

func (j *clientJSON) read(upTo numField) (*parleypb.ClientFrame, *FrameError) {
	switch {
	case j.Conversation == "":
		return nil, badRequest("", `read: missing "conversation"`)
	case !upTo.set:
		return nil, badRequest("", `read: missing "upTo"`)
	case upTo.v > math.MaxInt64:
		return nil, badRequest("", `read: "upTo" is out of range`)
	}
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{
		Conversation: j.Conversation, UpTo: int64(upTo.v)}}}, nil
}

// clip shortens client input quoted in error messages.
func clip(s string) string {
	const maxLen = 40
	if len(s) <= maxLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxLen], "") + "..."
}

// encodeClientJSON writes a client frame in the shape of PROTOCOL.md.
func encodeClientJSON(f *parleypb.ClientFrame) ([]byte, error) {
	b := make([]byte, 0, 96+clientSize(f))
	b = append(b, `{"type":`...)
	b = appendString(b, TypeOf(f))
	switch x := f.GetBody().(type) {
	case *parleypb.ClientFrame_Send:
		s := x.Send
		b = appendStr(b, "id", s.GetId())
		b = appendOptStr(b, "to", s.GetTo())
		b = appendOptStr(b, "group", s.GetGroup())
		b = appendOptStr(b, "channel", s.GetChannel())
		b = appendStr(b, "text", s.GetText())
	case *parleypb.ClientFrame_Sync:
		if x.Sync.After != nil {
			b = appendUintID(b, "after", *x.Sync.After)
		}
		b = appendOptNum(b, "limit", x.Sync.GetLimit())
	case *parleypb.ClientFrame_Received:
		b = appendUintID(b, "upTo", x.Received.GetUpTo())
	case *parleypb.ClientFrame_Read:
		b = appendStr(b, "conversation", x.Read.GetConversation())
		b = appendIntID(b, "upTo", x.Read.GetUpTo())
	case *parleypb.ClientFrame_History:
		b = appendHistoryRequest(b, x.History)
	case *parleypb.ClientFrame_Typing:
		b = appendOptStr(b, "to", x.Typing.GetTo())
		b = appendOptStr(b, "group", x.Typing.GetGroup())
	case *parleypb.ClientFrame_Presence:
		b = appendStr(b, "status", x.Presence.GetStatus())
	}
	return append(b, '}'), nil
}

func appendHistoryRequest(b []byte, h *parleypb.HistoryRequest) []byte {
	b = appendStr(b, "id", h.GetId())
	b = appendStr(b, "conversation", h.GetConversation())
	if h.GetBefore() != 0 {
		b = appendIntID(b, "before", h.GetBefore())
	}
	if h.GetAfter() != 0 {
		b = appendIntID(b, "after", h.GetAfter())
	}
	return appendOptNum(b, "limit", h.GetLimit())
}

func appendOptNum(b []byte, key string, v uint32) []byte {
	if v == 0 {
		return b
	}
	return appendNum(b, key, int64(v))
}

// clientSize is the length of the variable strings of a client frame, to size
// the output buffer once.
func clientSize(f *parleypb.ClientFrame) int {
	s := f.GetSend()
	return len(s.GetId()) + len(s.GetTo()) + len(s.GetGroup()) + len(s.GetChannel()) + len(s.GetText()) +
		len(f.GetRead().GetConversation()) + len(f.GetHistory().GetConversation())
}
