package wire

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleychat/parley/proto/parleypb"
)

// encodeServerJSON writes a server frame in the shape of PROTOCOL.md.
func encodeServerJSON(f *parleypb.ServerFrame) ([]byte, error) {
	b := make([]byte, 0, 64+serverSize(f))
	b = append(b, `{"type":`...)
	b = appendString(b, ServerTypeOf(f))
	switch x := f.GetBody().(type) {
	case *parleypb.ServerFrame_Sent:
		s := x.Sent
		b = appendStr(b, "id", s.GetId())
		b = appendIntID(b, "messageId", s.GetMessageId())
		b = appendStr(b, "conversation", s.GetConversation())
		b = appendNum(b, "ts", s.GetTs())
	case *parleypb.ServerFrame_Message:
		if m := x.Message; m.GetSeq() != 0 || m.GetChannel() == "" { // a live channel message has no seq
			b = appendUintID(b, "seq", m.GetSeq())
		}
		b = appendMessageMembers(b, x.Message)
	case *parleypb.ServerFrame_Synced:
		b = appendUintID(b, "upTo", x.Synced.GetUpTo())
		b = appendBool(b, "more", x.Synced.GetMore())
	case *parleypb.ServerFrame_Receipt:
		b = appendReceiptMembers(b, x.Receipt)
	case *parleypb.ServerFrame_History:
		b = appendHistory(b, x.History)
	case *parleypb.ServerFrame_Typing:
		b = appendStr(b, "conversation", x.Typing.GetConversation())
		b = appendStr(b, "from", x.Typing.GetFrom())
	case *parleypb.ServerFrame_Presence:
		p := x.Presence
		b = appendStr(b, "user", p.GetUser())
		b = appendStr(b, "status", p.GetStatus())
		b = appendNum(b, "lastSeen", p.GetLastSeen())
	case *parleypb.ServerFrame_Error:
		e := x.Error
		b = appendOptStr(b, "id", e.GetId())
		b = appendStr(b, "code", e.GetCode())
		b = appendStr(b, "message", e.GetMessage())
	case *parleypb.ServerFrame_Channels:
		b = append(appendKey(b, "channels"), '[')
		for i, c := range x.Channels.GetChannels() {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendChannelState(b, c)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// AppendChannelState appends a channel as its member sees it, as one object (the
// channels frame and GET /v1/channels write it alike).
func AppendChannelState(b []byte, c *parleypb.ChannelState) []byte {
	start := len(b)
	b = appendStr(b, "channel", c.GetChannel())
	b[start] = '{' // the members start with a comma: it becomes the brace
	b = appendStr(b, "id", c.GetId())
	b = appendStr(b, "name", c.GetName())
	b = appendStr(b, "mode", c.GetMode())
	b = appendStr(b, "role", c.GetRole())
	b = appendIntID(b, "lastMessageId", c.GetLastMessageId())
	b = appendIntID(b, "readUpTo", c.GetReadUpTo())
	b = appendNum(b, "unread", c.GetUnread())
	return append(b, '}')
}

// appendMessageMembers appends the members of a message but its seq, each with its
// leading comma.
func appendMessageMembers(b []byte, m *parleypb.Message) []byte {
	b = appendIntID(b, "messageId", m.GetMessageId())
	b = appendStr(b, "conversation", m.GetConversation())
	b = appendStr(b, "from", m.GetFrom())
	b = appendOptStr(b, "to", m.GetTo())
	b = appendOptStr(b, "group", m.GetGroup())
	b = appendOptStr(b, "channel", m.GetChannel())
	b = appendStr(b, "text", m.GetText())
	b = appendNum(b, "ts", m.GetTs())
	b = appendOptStr(b, "clientId", m.GetClientId())
	if m.GetChannel() != "" && m.GetSeq() == 0 {
		b = appendIntID(b, "prev", m.GetPrev()) // a live channel message: "0" for the first
	}
	return b
}

// encodeMessageJSON is a message frame with seq, as encodeServerJSON writes it.
func encodeMessageJSON(m *parleypb.Message, seq uint64) []byte {
	b := make([]byte, 0, 96+messageSize(m))
	b = append(b, `{"type":"message"`...)
	b = appendUintID(b, "seq", seq)
	return append(appendMessageMembers(b, m), '}')
}

// MessageJSON is a message as one JSON object, in the shape of a message inside a
// history answer (no seq unless set): the REST history uses it, so that REST and
// WebSocket write messages alike.
func MessageJSON(m *parleypb.Message) []byte {
	return appendMessageObject(make([]byte, 0, 128+len(m.GetText())), m)
}

// appendMessageObject appends a message as an object: seq only when set (a history
// page's messages come from the conversation, not a sync queue).
func appendMessageObject(b []byte, m *parleypb.Message) []byte {
	// The members start with a comma: turn the first one into the brace.
	start := len(b)
	if m.GetSeq() != 0 {
		b = appendUintID(b, "seq", m.GetSeq())
	}
	b = appendMessageMembers(b, m)
	b[start] = '{'
	return append(b, '}')
}

func appendHistory(b []byte, h *parleypb.History) []byte {
	b = appendStr(b, "id", h.GetId())
	b = appendStr(b, "conversation", h.GetConversation())
	b = append(appendKey(b, "messages"), '[')
	for i, m := range h.GetMessages() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessageObject(b, m)
	}
	b = append(b, ']')
	b = appendBool(b, "more", h.GetMore())
	if len(h.GetReceipts()) > 0 {
		b = append(appendKey(b, "receipts"), '[')
		for i, r := range h.GetReceipts() {
			if i > 0 {
				b = append(b, ',')
			}
			start := len(b)
			b = appendReceiptMembers(b, r)
			b[start] = '{' // the members start with a comma: it becomes the brace
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return b
}

// appendReceiptMembers appends a receipt's members; a group-wide one has "all":
// true and no user.
func appendReceiptMembers(b []byte, r *parleypb.Receipt) []byte {
	b = appendStr(b, "conversation", r.GetConversation())
	if r.GetAll() {
		b = appendBool(b, "all", true)
	} else {
		b = appendStr(b, "user", r.GetUser())
	}
	b = appendStr(b, "status", r.GetStatus())
	return appendIntID(b, "upTo", r.GetUpTo())
}

// ServerTypeOf returns the PROTOCOL.md type of a server frame ("sent", "message",
// ...), or "" for a frame without a body.
func ServerTypeOf(f *parleypb.ServerFrame) string {
	switch f.GetBody().(type) {
	case *parleypb.ServerFrame_Sent:
		return "sent"
	case *parleypb.ServerFrame_Message:
		return "message"
	case *parleypb.ServerFrame_Synced:
		return "synced"
	case *parleypb.ServerFrame_Receipt:
		return "receipt"
	case *parleypb.ServerFrame_History:
		return "history"
	case *parleypb.ServerFrame_Typing:
		return "typing"
	case *parleypb.ServerFrame_Presence:
		return "presence"
	case *parleypb.ServerFrame_Pong:
		return "pong"
	case *parleypb.ServerFrame_Error:
		return "error"
	case *parleypb.ServerFrame_Channels:
		return "channels"
	}
	return ""
}

// serverSize estimates the output length of a server frame beyond its fixed
// members, to size the buffer once.
func serverSize(f *parleypb.ServerFrame) int {
	n := messageSize(f.GetMessage())
	for _, m := range f.GetHistory().GetMessages() {
		n += messageSize(m)
	}
	for _, c := range f.GetChannels().GetChannels() {
		n += 160 + len(c.GetChannel()) + len(c.GetId()) + len(c.GetName())
	}
	e := f.GetError()
	return n + len(e.GetId()) + len(e.GetMessage()) + 64
}

func messageSize(m *parleypb.Message) int {
	if m == nil {
		return 0
	}
	return 170 + len(m.Conversation) + len(m.From) + len(m.To) + len(m.Group) + len(m.Channel) +
		len(m.Text) + len(m.ClientId)
}

// messageJSON is a message as it appears in a message frame or a history page.
type messageJSON struct {
	Seq          json.RawMessage `json:"seq"`
	MessageID    json.RawMessage `json:"messageId"`
	Conversation string          `json:"conversation"`
	From         string          `json:"from"`
	To           string          `json:"to"`
	Group        string          `json:"group"`
	Channel      string          `json:"channel"`
	Text         string          `json:"text"`
	Ts           int64           `json:"ts"`
	ClientID     string          `json:"clientId"`
	Prev         json.RawMessage `json:"prev"`
}

// channelJSON is a channel in a channels frame.
type channelJSON struct {
	Channel       string          `json:"channel"`
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Mode          string          `json:"mode"`
	Role          string          `json:"role"`
	LastMessageID json.RawMessage `json:"lastMessageId"`
	ReadUpTo      json.RawMessage `json:"readUpTo"`
	Unread        int64           `json:"unread"`
}

// serverJSON is every member a server frame may carry.
type serverJSON struct {
	Type string `json:"type"`
	messageJSON
	ID       string          `json:"id"`
	UpTo     json.RawMessage `json:"upTo"`
	More     bool            `json:"more"`
	User     string          `json:"user"`
	Status   string          `json:"status"`
	LastSeen int64           `json:"lastSeen"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Messages []messageJSON   `json:"messages"`
	All      bool            `json:"all"`
	Receipts []receiptJSON   `json:"receipts"`
	Channels []channelJSON   `json:"channels"`
}

// receiptJSON is a receipt in a history page.
type receiptJSON struct {
	Conversation string          `json:"conversation"`
	User         string          `json:"user"`
	All          bool            `json:"all"`
	Status       string          `json:"status"`
	UpTo         json.RawMessage `json:"upTo"`
}

func decodeServerJSON(data []byte) (*parleypb.ServerFrame, error) {
	var j serverJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("wire: bad server frame: %w", err)
	}
	if !isObject(data) {
		return nil, errors.New("wire: bad server frame: not a JSON object")
	}
	f, err := j.frame()
	if err != nil {
		return nil, fmt.Errorf("wire: bad %q frame: %w", j.Type, err)
	}
	return f, nil
}

func (j *serverJSON) frame() (*parleypb.ServerFrame, error) {
	switch j.Type {
	case "sent":
		id, err := optInt("messageId", j.MessageID)
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
			Id: j.ID, MessageId: id, Conversation: j.Conversation, Ts: j.Ts}}}, err
	case "message":
		m, err := j.message()
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}}, err
	case "synced":
		upTo, err := optUint("upTo", j.UpTo)
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{
			UpTo: upTo, More: j.More}}}, err
	case "receipt":
		upTo, err := optInt("upTo", j.UpTo)
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Receipt{Receipt: &parleypb.Receipt{
			Conversation: j.Conversation, User: j.User, Status: j.Status, UpTo: upTo, All: j.All}}}, err
	case "history":
		return j.history()
	case "typing":
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Typing{Typing: &parleypb.TypingNotice{
			Conversation: j.Conversation, From: j.From}}}, nil
	case "presence":
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Presence{Presence: &parleypb.Presence{
			User: j.User, Status: j.Status, LastSeen: j.LastSeen}}}, nil
	case "pong":
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}}, nil
	case "error":
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
			Id: j.ID, Code: j.Code, Message: j.Message}}}, nil
	case "channels":
		cs := &parleypb.Channels{}
		for i, c := range j.Channels {
			last, err := optInt("lastMessageId", c.LastMessageID)
			if err != nil {
				return nil, fmt.Errorf("channels[%d]: %w", i, err)
			}
			read, err := optInt("readUpTo", c.ReadUpTo)
			if err != nil {
				return nil, fmt.Errorf("channels[%d]: %w", i, err)
			}
			cs.Channels = append(cs.Channels, &parleypb.ChannelState{Channel: c.Channel, Id: c.ID, Name: c.Name,
				Mode: c.Mode, Role: c.Role, LastMessageId: last, ReadUpTo: read, Unread: c.Unread})
		}
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Channels{Channels: cs}}, nil
	case "":
		return nil, errors.New(`missing "type"`)
	}
	return nil, errors.New("unknown frame type")
}

func (j *serverJSON) history() (*parleypb.ServerFrame, error) {
	h := &parleypb.History{Id: j.ID, Conversation: j.Conversation, More: j.More,
		Messages: make([]*parleypb.Message, 0, len(j.Messages))}
	for i := range j.Messages {
		m, err := j.Messages[i].message()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		h.Messages = append(h.Messages, m)
	}
	for i, r := range j.Receipts {
		upTo, err := optInt("upTo", r.UpTo)
		if err != nil {
			return nil, fmt.Errorf("receipts[%d]: %w", i, err)
		}
		h.Receipts = append(h.Receipts, &parleypb.Receipt{Conversation: r.Conversation, User: r.User, All: r.All,
			Status: r.Status, UpTo: upTo})
	}
	return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_History{History: h}}, nil
}

func (m *messageJSON) message() (*parleypb.Message, error) {
	seq, err := optUint("seq", m.Seq)
	if err != nil {
		return nil, err
	}
	id, err := optInt("messageId", m.MessageID)
	if err != nil {
		return nil, err
	}
	prev, err := optInt("prev", m.Prev)
	if err != nil {
		return nil, err
	}
	return &parleypb.Message{Seq: seq, MessageId: id, Conversation: m.Conversation, From: m.From,
		To: m.To, Group: m.Group, Channel: m.Channel, Text: m.Text, Ts: m.Ts, ClientId: m.ClientID, Prev: prev}, nil
}

// optUint parses an id or seq member; absent is zero.
func optUint(name string, raw json.RawMessage) (uint64, error) {
	if isNull(raw) {
		return 0, nil
	}
	v, err := parseUint(raw)
	if err != nil {
		return 0, fmt.Errorf("%q %w", name, err)
	}
	return v, nil
}

// optInt parses a message id member; absent is zero.
func optInt(name string, raw json.RawMessage) (int64, error) {
	if isNull(raw) {
		return 0, nil
	}
	v, err := parseInt(raw)
	if err != nil {
		return 0, fmt.Errorf("%q %w", name, err)
	}
	return v, nil
}
