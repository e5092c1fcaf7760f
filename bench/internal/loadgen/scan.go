package loadgen

import (
	"strings"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// frameKind is the type of a server frame, as far as loadgen cares.
type frameKind uint8

const (
	kindOther frameKind = iota // history, typing, presence, pong: not looked at
	kindSent
	kindMessage
	kindSynced
	kindError
	kindReceipt  // counted only
	kindChannels // the answer to a channels frame
)

// inFrame is the part of a server frame loadgen reads. Its byte slices point
// into the frame's payload (or a decoded frame's strings) and are valid until
// the next frame is read.
type inFrame struct {
	kind     frameKind
	seq      uint64 // message
	msgID    uint64 // message: its message id
	upTo     uint64 // synced
	more     bool   // synced
	id       []byte // sent, error: the client message id
	from     []byte // message
	clientID []byte // message
	code     []byte // error
	text     []byte // error: its message
	body     []byte // message: its text as sent on the wire (JSON: escapes left in)
	prev     uint64 // live channel message: the id of the channel's message before it
	// channels: the answer's list, as JSON (the fast scan) or decoded (the full one).
	raw    []byte
	states []*parleypb.ChannelState
}

// decodeFrame fills f from a server message: JSON through scanJSON, falling
// back to the full decoder for anything it does not take (fast reports which
// one it was); protobuf through the full decoder.
func decodeFrame(enc wire.Encoding, data []byte, f *inFrame) (fast bool, err error) {
	if enc == wire.JSON && scanJSON(data, f) {
		return true, nil
	}
	sf, err := wire.DecodeServer(enc, data)
	if err != nil {
		return false, err
	}
	fromProto(sf, f)
	return false, nil
}

// fromProto fills f from a decoded frame.
func fromProto(sf *parleypb.ServerFrame, f *inFrame) {
	*f = inFrame{}
	switch b := sf.GetBody().(type) {
	case *parleypb.ServerFrame_Sent:
		f.kind, f.id = kindSent, []byte(b.Sent.GetId())
	case *parleypb.ServerFrame_Message:
		m := b.Message
		f.kind, f.seq, f.from, f.clientID = kindMessage, m.GetSeq(), []byte(m.GetFrom()), []byte(m.GetClientId())
		f.msgID, f.body, f.prev = uint64(m.GetMessageId()), []byte(m.GetText()), uint64(m.GetPrev())
	case *parleypb.ServerFrame_Channels:
		f.kind, f.states = kindChannels, b.Channels.GetChannels()
	case *parleypb.ServerFrame_Synced:
		f.kind, f.upTo, f.more = kindSynced, b.Synced.GetUpTo(), b.Synced.GetMore()
	case *parleypb.ServerFrame_Receipt:
		f.kind = kindReceipt
	case *parleypb.ServerFrame_Error:
		e := b.Error
		f.kind, f.id, f.code, f.text = kindError, []byte(e.GetId()), []byte(e.GetCode()), []byte(e.GetMessage())
	}
}

// scanJSON reads the members loadgen needs from a JSON server frame without
// decoding the rest: the frames come from our own server, in the shape of
// PROTOCOL.md (a flat object; ids and seqs as decimal strings). It returns false
// for anything it does not take whole: a syntax it does not expect, an escape in
// a member it needs, a number that does not fit; the full decoder then decides.
func scanJSON(data []byte, f *inFrame) bool {
	*f = inFrame{}
	s := jsonScan{b: data}
	if !s.byte('{') {
		return false
	}
	if s.peek() == '}' {
		return false // no type
	}
	var typ []byte
	for {
		key, ok := s.str()
		if !ok || !s.byte(':') {
			return false
		}
		if !s.member(f, key, &typ) {
			return false
		}
		switch s.next() {
		case ',':
			continue
		case '}':
			s.ws()
			return s.i == len(s.b) && setKind(f, typ)
		}
		return false
	}
}

// member reads the value of key into f, or skips it.
func (s *jsonScan) member(f *inFrame, key []byte, typ *[]byte) bool {
	var ok bool
	switch string(key) {
	case "type":
		*typ, ok = s.str()
	case "id":
		f.id, ok = s.str()
	case "from":
		f.from, ok = s.str()
	case "clientId":
		f.clientID, ok = s.str()
	case "code":
		f.code, ok = s.str()
	case "message":
		f.text, ok = s.str()
	case "seq":
		f.seq, ok = s.uint()
	case "messageId":
		f.msgID, ok = s.uint()
	case "upTo":
		f.upTo, ok = s.uint()
	case "more":
		f.more, ok = s.bool()
	case "prev":
		f.prev, ok = s.uint()
	case "text":
		f.body, ok = s.rawString()
	case "channels":
		f.raw, ok = s.rawValue()
	default:
		ok = !foldsToKnown(key) && s.skip(0)
	}
	return ok
}

// knownKeys are the members member reads.
var knownKeys = [...]string{"type", "id", "from", "clientId", "code", "message", "seq", "messageId", "upTo", "more",
	"prev", "text", "channels"}

// foldsToKnown reports a key that encoding/json would take for one of
// knownKeys (it matches names case-insensitively, Unicode folding included), so
// that such a frame goes to the full decoder rather than being read otherwise.
func foldsToKnown(key []byte) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true // let the full decoder judge non-ASCII folding
		}
	}
	for _, k := range knownKeys {
		// The first letters compared folded first: for ASCII, b|0x20 is a lower-case
		// letter only for that letter in either case.
		if len(k) == len(key) && key[0]|0x20 == k[0] && strings.EqualFold(k, string(key)) {
			return true
		}
	}
	return false
}

// setKind sets f's kind from its type, and drops what a type does not have (an
// error's "message" is its text; a receipt's "upTo" is no sync position).
func setKind(f *inFrame, typ []byte) bool {
	switch string(typ) {
	case "sent":
		*f = inFrame{kind: kindSent, id: f.id}
	case "message":
		*f = inFrame{kind: kindMessage, seq: f.seq, msgID: f.msgID, from: f.from, clientID: f.clientID, body: f.body, prev: f.prev}
	case "channels":
		*f = inFrame{kind: kindChannels, raw: f.raw}
	case "receipt":
		*f = inFrame{kind: kindReceipt}
	case "synced":
		*f = inFrame{kind: kindSynced, upTo: f.upTo, more: f.more}
	case "error":
		*f = inFrame{kind: kindError, id: f.id, code: f.code, text: f.text}
	case "":
		return false
	default:
		*f = inFrame{}
	}
	return true
}

// jsonScan is a cursor over one JSON text.
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek is the next byte after white space, or 0 at the end.
func (s *jsonScan) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// next consumes and returns the next byte after white space, or 0 at the end.
func (s *jsonScan) next() byte {
	c := s.peek()
	if c != 0 {
		s.i++
	}
	return c
}

func (s *jsonScan) byte(c byte) bool { return s.next() == c }

// str reads a string with no escape in it and returns its bytes; invalid
// UTF-8 is refused (encoding/json would replace it).
func (s *jsonScan) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			v := s.b[start : s.i-1]
			return v, ascii || utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// uint reads a decimal integer, quoted (as ids and seqs are sent) or bare.
func (s *jsonScan) uint() (uint64, bool) {
	quoted := s.peek() == '"'
	if quoted {
		s.i++
	}
	var v uint64
	start := s.i
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		d := uint64(s.b[s.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if s.i == start {
		return 0, false
	}
	if quoted {
		if s.i == len(s.b) || s.b[s.i] != '"' {
			return 0, false
		}
		s.i++
	}
	return v, true
}

// rawString passes over a string and returns what is between its quotes,
// escapes left as they are.
func (s *jsonScan) rawString() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	if !s.skipString() {
		return nil, false
	}
	return s.b[start : s.i-1], true
}

// rawValue passes over a value of any kind and returns its text.
func (s *jsonScan) rawValue() ([]byte, bool) {
	s.ws()
	start := s.i
	if !s.skip(0) {
		return nil, false
	}
	return s.b[start:s.i], true
}

func (s *jsonScan) bool() (bool, bool) {
	s.ws()
	switch rest := s.b[s.i:]; {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// maxDepth bounds the nesting skip walks through.
const maxDepth = 32

// skip passes over one value of any kind (escapes in strings included).
func (s *jsonScan) skip(depth int) bool {
	switch c := s.peek(); c {
	case '"':
		return s.skipString()
	case '{', '[':
		if depth >= maxDepth {
			return false
		}
		return s.skipComposite(c, depth)
	case 0:
		return false
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return true
		}
	}
	return s.skipNumber()
}

// skipNumber passes over a JSON number: -?digits(.digits)?([eE][+-]?digits)?
// (leading zeros are let through; the full decoder judges those).
func (s *jsonScan) skipNumber() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if !s.digits() {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		return s.digits()
	}
	return true
}

func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *jsonScan) skipString() bool {
	s.i++ // the opening quote
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			s.i++ // the escaped byte (\uXXXX's hex digits are plain bytes)
		case c < 0x20:
			return false
		}
	}
	return false
}

// skipComposite passes over an object or an array.
func (s *jsonScan) skipComposite(open byte, depth int) bool {
	s.i++
	closer := byte('}')
	if open == '[' {
		closer = ']'
	}
	if s.peek() == closer {
		s.i++
		return true
	}
	for {
		if open == '{' {
			if s.peek() != '"' || !s.skipString() || !s.byte(':') {
				return false
			}
		}
		if !s.skip(depth + 1) {
			return false
		}
		switch s.next() {
		case ',':
		case closer:
			return true
		default:
			return false
		}
	}
}
