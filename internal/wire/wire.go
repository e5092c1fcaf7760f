// Package wire is the frame codec between WebSocket payloads and the protobuf
// frames of proto/parleypb. It is used by the server gateway (DecodeClient,
// EncodeServer) and by the Go client and tests (EncodeClient, DecodeServer).
//
// Two encodings exist. JSON (text frames) maps each frame to the flat
// {"type": ...} objects of PROTOCOL.md, with 64-bit ids and seqs as decimal
// strings and timestamps as numbers. Proto (binary frames) is one marshalled
// parleypb.ClientFrame or parleypb.ServerFrame.
//
// DecodeClient also validates the shape of a client frame (required fields,
// exactly-one-of rules, enumerated values) and reports a bad frame as a
// *FrameError carrying a PROTOCOL.md error code. Limits that depend on server
// configuration, such as the text length, are left to the caller.
//
// The package is stateless and safe for concurrent use.
package wire

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/proto/parleypb"
)

// Encoding selects how frames are carried on the WebSocket.
type Encoding uint8

const (
	// JSON is one JSON object per text frame (the default).
	JSON Encoding = iota
	// Proto is one marshalled ClientFrame or ServerFrame per binary frame.
	Proto
)

// String returns the name used in the ?encoding= query parameter.
func (e Encoding) String() string {
	switch e {
	case JSON:
		return "json"
	case Proto:
		return "proto"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// ParseEncoding parses the ?encoding= query parameter: "" and "json" are JSON,
// "proto" is Proto.
func ParseEncoding(s string) (Encoding, error) {
	switch s {
	case "", "json":
		return JSON, nil
	case "proto":
		return Proto, nil
	}
	return 0, fmt.Errorf("wire: unknown encoding %q (want json or proto)", s)
}

// Error codes of PROTOCOL.md used by this package (parleypb.ErrorReason's codes).
var (
	CodeBadRequest = parleypb.ErrorReason_BAD_REQUEST.Code()
	CodeInternal   = parleypb.ErrorReason_INTERNAL.Code()
)

// Close codes of PROTOCOL.md and RFC 6455 that the server sends.
const (
	CloseNormal        = 1000 // the device logged out
	CloseGoingAway     = 1001 // server shutting down, or no heartbeat for presence.deadAfter (reason "no heartbeat")
	CloseProtocolError = 1002 // the client broke RFC 6455's framing
	CloseInvalidData   = 1007 // a text frame or close reason that is not UTF-8
	ClosePolicy        = 1008 // abuse: over a rate limit
	CloseTooBig        = 1009 // a frame or message over the size limit
	CloseInternalError = 1011 // the server cannot serve the connection
	CloseTryAgain      = 1013 // the connection fell behind (or the server is overloaded): reconnect and sync
	CloseDisconnected  = 4001 // an operator disconnected the user (POST /admin/users/{id}/disconnect)
)

// FrameError is a bad client frame: Code is a PROTOCOL.md error code
// ("bad_request"), ID the frame's "id" when it had one, so that the server can
// answer with an error frame carrying both.
type FrameError struct {
	ID, Code, Message string
}

func (e *FrameError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("%s (id %q): %s", e.Code, e.ID, e.Message)
	}
	return e.Code + ": " + e.Message
}

func badRequest(id, format string, args ...any) *FrameError {
	return &FrameError{ID: id, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

var errEmptyFrame = errors.New("wire: frame has no body")

// DecodeClient decodes and validates one client frame. Its errors are always
// *FrameError.
func DecodeClient(enc Encoding, data []byte) (*parleypb.ClientFrame, error) {
	var (
		f  *parleypb.ClientFrame
		fe *FrameError
	)
	switch enc {
	case JSON:
		f, fe = decodeClientJSON(data)
	case Proto:
		f, fe = decodeClientProto(data)
	default:
		return nil, &FrameError{Code: CodeInternal, Message: "unknown encoding " + enc.String()}
	}
	if fe != nil {
		return nil, fe
	}
	return f, nil
}

// EncodeServer encodes one server frame.
func EncodeServer(enc Encoding, f *parleypb.ServerFrame) ([]byte, error) {
	if f.GetBody() == nil {
		return nil, errEmptyFrame
	}
	switch enc {
	case JSON:
		return encodeServerJSON(f)
	case Proto:
		return proto.Marshal(f)
	}
	return nil, fmt.Errorf("wire: unknown encoding %s", enc)
}

// EncodeMessage encodes a message frame whose message has seq, without changing m:
// one stored message is written to each member's socket with that member's seq.
func EncodeMessage(enc Encoding, m *parleypb.Message, seq uint64) ([]byte, error) {
	switch enc {
	case JSON:
		return encodeMessageJSON(m, seq), nil
	case Proto:
		return encodeMessageProto(m, seq)
	}
	return nil, fmt.Errorf("wire: unknown encoding %s", enc)
}

// encodeMessageProto writes ServerFrame{message: m with seq}. With m's own seq unset
// (or equal), the seq field is written before m's encoding, which has only the fields
// after it: the same bytes as marshalling the frame, with no copy of m. A seq of 0 is
// not written, as marshalling leaves it out.
func encodeMessageProto(m *parleypb.Message, seq uint64) ([]byte, error) {
	if s := m.GetSeq(); s != 0 && s != seq {
		c := proto.Clone(m).(*parleypb.Message)
		c.Seq = 0
		m = c
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	if m.GetSeq() == seq { // in body already, or 0 and left out
		return protowire.AppendBytes(protowire.AppendTag(make([]byte, 0, len(body)+4), messageField, protowire.BytesType), body), nil
	}
	inner := protowire.SizeTag(seqField) + protowire.SizeVarint(seq) + len(body)
	b := make([]byte, 0, protowire.SizeTag(messageField)+protowire.SizeVarint(uint64(inner))+inner)
	b = protowire.AppendTag(b, messageField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = protowire.AppendTag(b, seqField, protowire.VarintType)
	b = protowire.AppendVarint(b, seq)
	return append(b, body...), nil
}

// Field numbers of ServerFrame.message and Message.seq (proto/frames.proto).
const (
	messageField protowire.Number = 2
	seqField     protowire.Number = 1
)

// EncodeClient encodes one client frame. It does not validate it, so tests can
// send bad frames on purpose.
func EncodeClient(enc Encoding, f *parleypb.ClientFrame) ([]byte, error) {
	if f.GetBody() == nil {
		return nil, errEmptyFrame
	}
	switch enc {
	case JSON:
		return encodeClientJSON(f)
	case Proto:
		return proto.Marshal(f)
	}
	return nil, fmt.Errorf("wire: unknown encoding %s", enc)
}

// DecodeServer decodes one server frame. It checks the syntax and the frame
// type, not the presence of fields.
func DecodeServer(enc Encoding, data []byte) (*parleypb.ServerFrame, error) {
	switch enc {
	case JSON:
		return decodeServerJSON(data)
	case Proto:
		f := new(parleypb.ServerFrame)
		if err := unmarshalOpts.Unmarshal(data, f); err != nil {
			return nil, fmt.Errorf("wire: bad server frame: %w", err)
		}
		if f.Body == nil {
			return nil, errEmptyFrame
		}
		return f, nil
	}
	return nil, fmt.Errorf("wire: unknown encoding %s", enc)
}

// TypeOf returns the PROTOCOL.md type of a client frame ("send", "sync", ...),
// or "" for a frame without a body.
func TypeOf(f *parleypb.ClientFrame) string {
	switch f.GetBody().(type) {
	case *parleypb.ClientFrame_Send:
		return "send"
	case *parleypb.ClientFrame_Sync:
		return "sync"
	case *parleypb.ClientFrame_Received:
		return "received"
	case *parleypb.ClientFrame_Read:
		return "read"
	case *parleypb.ClientFrame_History:
		return "history"
	case *parleypb.ClientFrame_Typing:
		return "typing"
	case *parleypb.ClientFrame_Presence:
		return "presence"
	case *parleypb.ClientFrame_Ping:
		return "ping"
	case *parleypb.ClientFrame_Channels:
		return "channels"
	}
	return ""
}

// Unknown fields are dropped, as unknown JSON keys are ignored.
var unmarshalOpts = proto.UnmarshalOptions{DiscardUnknown: true}

func decodeClientProto(data []byte) (*parleypb.ClientFrame, *FrameError) {
	f := new(parleypb.ClientFrame)
	if err := unmarshalOpts.Unmarshal(data, f); err != nil {
		return nil, badRequest("", "unparsable protobuf frame: %v", err)
	}
	if fe := validate(f); fe != nil {
		return nil, fe
	}
	return f, nil
}

// maxClientID is the longest client message id, in characters.
const maxClientID = 64

// validate applies the checks shared by both encodings.
func validate(f *parleypb.ClientFrame) *FrameError {
	switch b := f.GetBody().(type) {
	case nil:
		return badRequest("", "empty frame")
	case *parleypb.ClientFrame_Send:
		return validateSend(b.Send)
	case *parleypb.ClientFrame_Read:
		switch {
		case b.Read.GetConversation() == "":
			return badRequest("", `read: missing "conversation"`)
		case b.Read.GetUpTo() < 0:
			return badRequest("", `read: "upTo" must not be negative`)
		}
	case *parleypb.ClientFrame_History:
		h := b.History
		switch {
		case h.GetId() == "":
			return badRequest("", `history: missing "id"`)
		case h.GetConversation() == "":
			return badRequest(h.GetId(), `history: missing "conversation"`)
		case h.GetBefore() < 0 || h.GetAfter() < 0:
			return badRequest(h.GetId(), `history: "before" and "after" must not be negative`)
		}
	case *parleypb.ClientFrame_Typing:
		return checkTarget("typing", "", b.Typing.GetTo(), b.Typing.GetGroup())
	case *parleypb.ClientFrame_Presence:
		if s := b.Presence.GetStatus(); s != "online" && s != "away" {
			return badRequest("", `presence: "status" must be "online" or "away", got %q`, s)
		}
	}
	return nil
}

func validateSend(s *parleypb.Send) *FrameError {
	id := s.GetId()
	if id == "" {
		return badRequest("", `send: missing "id"`)
	}
	if n := utf8.RuneCountInString(id); n > maxClientID {
		return badRequest(id, `send: "id" is %d characters, at most %d allowed`, n, maxClientID)
	}
	if i := badIDChar(id); i >= 0 {
		echo := id
		if !utf8.ValidString(id) {
			echo = "" // a protobuf string must be valid UTF-8
		}
		return badRequest(echo, `send: "id" has a control character or invalid UTF-8 at byte %d`, i)
	}
	if s.GetText() == "" {
		return badRequest(id, `send: missing "text"`)
	}
	if c := s.GetChannel(); c != "" {
		if s.GetTo() != "" || s.GetGroup() != "" {
			return badRequest(id, `send: only one of "to", "group" or "channel" may be set`)
		}
		return nil
	}
	return checkTarget("send", id, s.GetTo(), s.GetGroup())
}

// badIDChar is the byte offset of the first invalid UTF-8 sequence or control
// character (Unicode Cc: NUL, newlines, ...) in a client id, or -1. Client ids are
// stored as text and echoed in frames; such bytes break one or the other.
func badIDChar(id string) int {
	for i, r := range id {
		if r == utf8.RuneError || unicode.IsControl(r) {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(id[i:]); size > 1 {
					continue // a literal U+FFFD is a character like any other
				}
			}
			return i
		}
	}
	return -1
}

// checkTarget checks that exactly one of to and group is set.
func checkTarget(typ, id, to, group string) *FrameError {
	switch {
	case to == "" && group == "":
		return badRequest(id, `%s: one of "to" or "group" is required`, typ)
	case to != "" && group != "":
		return badRequest(id, `%s: only one of "to" or "group" may be set`, typ)
	}
	return nil
}
