package gateway_test

// RFC 6455 conformance of the WebSocket endpoint, driven with raw frames: what
// Autobahn|Testsuite checks in its sections 1-7, 9 and 10 that applies to a server
// without extensions (framing, ping/pong, reserved bits, opcodes, fragmentation,
// UTF-8, close handling, limits), and the refused handshakes. The gateway is not an
// echo server, so where Autobahn expects an echo these cases check what the handler
// received instead.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// wireCase is one exchange: the client writes send and a last ping (concatenated,
// in writes of chop bytes, or all at once when chop is 0); the server must answer
// exactly pongs (in order), then close with closeCode and end the stream, or, when
// closeCode is 0, answer the last ping and stay open; the handler must have received
// frames and bad BadFrame calls.
type wireCase struct {
	name      string
	enc       wire.Encoding // zero value: JSON
	maxFrame  int           // MaxFrameBytes; 0: defaultConfig's 1024
	send      [][]byte
	chop      int
	pongs     [][]byte
	closeCode int
	frames    []*parleypb.ClientFrame
	bad       int
}

// runWireCases runs the cases one after the other, on one gateway per frame limit:
// each case's socket is closed before the next one starts.
func runWireCases(t *testing.T, cases []wireCase) {
	t.Helper()
	gateways := map[int]*harness{}
	for _, tc := range cases {
		cfg := defaultConfig()
		if tc.maxFrame > 0 {
			cfg.MaxFrameBytes = tc.maxFrame
		}
		h := gateways[cfg.MaxFrameBytes]
		if h == nil {
			h = newHarness(t, cfg, nil)
			gateways[cfg.MaxFrameBytes] = h
		}
		t.Run(tc.name, func(t *testing.T) { runWireCase(t, h, tc) })
	}
}

func runWireCase(t *testing.T, h *harness, tc wireCase) {
	waitFor(t, "the sockets of earlier cases closed", func() bool { return h.srv.Count() == 0 })
	n := len(h.recorders())
	c := h.dialRaw(t, tc.enc)
	r := h.handler(t, n)
	// A last ping: when the socket stays open, its pong proves that every frame
	// before it was handled and answered in order; when it must close, the ping
	// comes after the close and must get no answer (and a socket that wrongly stays
	// open fails the case at once instead of a read timing out).
	data := append(bytes.Join(tc.send, nil), ping("end of case")...)
	want := tc.pongs
	if tc.closeCode == 0 {
		want = append(append([][]byte(nil), want...), []byte("end of case"))
	}
	writeChopped(t, c, data, tc.chop)

	for i, p := range want {
		f := c.readFrame(t)
		require.Equal(t, ws.OpPong, f.Header.OpCode, "answer %d: want a pong, got opcode %v (payload %q)", i, f.Header.OpCode, f.Payload)
		require.Equal(t, string(p), string(f.Payload), "pong %d", i)
	}
	frames, bad, closed, _ := r.snapshot()
	if tc.closeCode == 0 {
		require.Zero(t, closed, "the socket should be open")
		require.Equal(t, 1, h.srv.Count())
		_, err := c.Write(closeFrame(ws.StatusNormalClosure, "end of case"))
		require.NoError(t, err)
		requireCloseThenEOF(t, c, int(ws.StatusNormalClosure))
	} else {
		requireCloseThenEOF(t, c, tc.closeCode)
		frames, bad, _, _ = r.snapshot()
	}
	requireClosedOnce(t, h, r)
	require.Len(t, frames, len(tc.frames), "frames the handler received")
	for i := range frames {
		requireFrame(t, tc.frames[i], frames[i])
	}
	require.Len(t, bad, tc.bad, "BadFrame calls: %v", bad)
}

// writeChopped writes data in writes of chop bytes (all at once if chop is 0).
func writeChopped(t *testing.T, c *rawConn, data []byte, chop int) {
	t.Helper()
	if chop <= 0 {
		chop = len(data)
	}
	for len(data) > 0 {
		n := min(chop, len(data))
		_, err := c.Write(data[:n])
		require.NoError(t, err)
		data = data[n:]
	}
}

// requireCloseThenEOF reads the next frame, which must be a close frame with code,
// and then the end of the stream: after its close frame the server sends nothing and
// closes the connection.
func requireCloseThenEOF(t *testing.T, c *rawConn, code int) {
	t.Helper()
	f := c.readFrame(t)
	require.Equal(t, ws.OpClose, f.Header.OpCode, "want a close frame, got opcode %v (payload %q)", f.Header.OpCode, f.Payload)
	require.True(t, f.Header.Fin)
	got, reason := ws.ParseCloseFrameData(f.Payload)
	require.Equal(t, code, int(got), "close code (reason %q)", reason)
	rest, err := io.ReadAll(c.r)
	require.NoError(t, err, "the server should end the stream after its close frame")
	require.Empty(t, rest, "the server sent bytes after its close frame")
}

// frameBytes is a client frame with every header bit chosen: rsv is the three
// reserved bits (RSV1 = 4), and an unmasked frame is sent as is.
func frameBytes(fin bool, rsv byte, op ws.OpCode, masked bool, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: masked, Length: int64(len(payload))}
	p := bytes.Clone(payload)
	if masked {
		h.Mask = [4]byte{0x37, 0xfa, 0x21, 0x3d}
		ws.Cipher(p, h.Mask, 0)
	}
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	return append(b.Bytes(), p...)
}

func text(fin bool, p []byte) []byte { return maskedFrame(fin, ws.OpText, p) }
func cont(fin bool, p []byte) []byte { return maskedFrame(fin, ws.OpContinuation, p) }
func ping(p string) []byte           { return maskedFrame(true, ws.OpPing, []byte(p)) }
func pong(p string) []byte           { return maskedFrame(true, ws.OpPong, []byte(p)) }

func closeFrame(code ws.StatusCode, reason string) []byte {
	return maskedFrame(true, ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// fragments cuts msg into a first frame of op and continuations at the given
// offsets (every piece may be empty).
func fragments(op ws.OpCode, msg []byte, cuts ...int) [][]byte {
	var out [][]byte
	prev := 0
	for i, cut := range append(cuts, len(msg)) {
		fop := ws.OpContinuation
		if i == 0 {
			fop = op
		}
		out = append(out, maskedFrame(i == len(cuts), fop, msg[prev:cut]))
		prev = cut
	}
	return out
}

// bytewise is msg as a text message in one fragment per byte.
func bytewise(msg []byte) [][]byte {
	cuts := make([]int, 0, len(msg))
	for i := 1; i < len(msg); i++ {
		cuts = append(cuts, i)
	}
	return fragments(ws.OpText, msg, cuts...)
}

func frames(fs ...*parleypb.ClientFrame) []*parleypb.ClientFrame { return fs }

func pongs(ps ...string) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = []byte(p)
	}
	return out
}

// sized is a JSON send frame of exactly n bytes and the frame it decodes to.
func sized(t *testing.T, n int) ([]byte, *parleypb.ClientFrame) {
	b := jsonOfSize(t, n)
	return b, sendFrame("big", strings.Repeat("x", n-len(sendJSON("big", ""))))
}

// protoSized is a protobuf send frame of exactly n bytes and the frame it is.
func protoSized(t *testing.T, n int) ([]byte, *parleypb.ClientFrame) {
	t.Helper()
	for idLen := 1; idLen <= 3; idLen++ {
		for k := n; k >= 0; k-- {
			f := sendFrame(strings.Repeat("p", idLen), strings.Repeat("y", k))
			b, err := wire.EncodeClient(wire.Proto, f)
			require.NoError(t, err)
			if len(b) == n {
				return b, f
			}
			if len(b) < n-8 {
				break
			}
		}
	}
	t.Fatalf("no protobuf send frame of %d bytes", n)
	return nil, nil
}

// Section 1 (and 9, 10 within the frame limit): messages of every length encoding,
// in one write, split into writes of few bytes, and many frames in one write.
func TestRFC6455Framing(t *testing.T) {
	t.Parallel()
	const big = 65536
	var cases []wireCase
	for _, n := range []int{125, 126, 127, 65535, 65536} {
		msg, want := sized(t, n)
		cases = append(cases,
			wireCase{name: fmt.Sprintf("text %d", n), maxFrame: big, send: [][]byte{text(true, msg)}, frames: frames(want)},
			wireCase{name: fmt.Sprintf("text %d in writes of 997 bytes", n), maxFrame: big, send: [][]byte{text(true, msg)}, chop: 997, frames: frames(want)},
		)
		pmsg, pwant := protoSized(t, n)
		cases = append(cases, wireCase{name: fmt.Sprintf("binary %d", n), enc: wire.Proto, maxFrame: big,
			send: [][]byte{maskedFrame(true, ws.OpBinary, pmsg)}, frames: frames(pwant)})
	}
	small, smallWant := sized(t, 200)
	many := func(n int) ([][]byte, []*parleypb.ClientFrame, [][]byte) {
		var send [][]byte
		var want []*parleypb.ClientFrame
		var ps [][]byte
		for i := range n {
			id := fmt.Sprint("m", i)
			send = append(send, text(true, sendJSON(id, "many")), ping(id))
			want = append(want, sendFrame(id, "many"))
			ps = append(ps, []byte(id))
		}
		return send, want, ps
	}
	manySend, manyWant, manyPongs := many(50)
	cases = append(cases,
		wireCase{name: "empty text", send: [][]byte{text(true, nil)}, bad: 1},
		wireCase{name: "empty binary", enc: wire.Proto, send: [][]byte{maskedFrame(true, ws.OpBinary, nil)}, bad: 1},
		wireCase{name: "text and ping one byte per write", send: [][]byte{text(true, small), ping("after")}, chop: 1,
			pongs: pongs("after"), frames: frames(smallWant)},
		wireCase{name: "50 messages and 50 pings in one write", send: manySend, pongs: manyPongs, frames: manyWant},
		wireCase{name: "50 messages and 50 pings in writes of 7 bytes", send: manySend, chop: 7, pongs: manyPongs, frames: manyWant},
		wireCase{name: "64-bit length with the top bit set", send: [][]byte{{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}},
			closeCode: 1002},
		wireCase{name: "one byte over the limit", maxFrame: big, send: [][]byte{text(true, jsonOfSize(t, big+1))}, closeCode: 1009},
	)
	runWireCases(t, cases)
}

// maskedFrame lays out lengths with 7, 16 and 64 bits as RFC 6455 §5.2 says, so
// that the framing cases above cover each encoding.
func TestRFC6455LengthEncodings(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]byte{0: 0, 125: 125, 126: 126, 65535: 126, 65536: 127} {
		f := maskedFrame(true, ws.OpText, make([]byte, n))
		require.Equal(t, want, f[1]&0x7f, "length %d", n)
		require.Equal(t, byte(0x80), f[1]&0x80, "masked")
	}
}

// Section 2: pings are answered with their payload, pongs are ignored.
func TestRFC6455PingPong(t *testing.T) {
	t.Parallel()
	full := strings.Repeat("\xfe", 125)
	var bin bytes.Buffer
	for i := range 125 {
		bin.WriteByte(byte(i * 2))
	}
	var tenPings [][]byte
	var tenPongs [][]byte
	for i := range 10 {
		p := fmt.Sprint("payload-", i)
		tenPings = append(tenPings, ping(p))
		tenPongs = append(tenPongs, []byte(p))
	}
	runWireCases(t, []wireCase{
		{name: "ping without payload", send: [][]byte{ping("")}, pongs: pongs("")},
		{name: "ping with text payload", send: [][]byte{ping("Hello, world!")}, pongs: pongs("Hello, world!")},
		{name: "ping with binary payload", send: [][]byte{ping(bin.String())}, pongs: pongs(bin.String())},
		{name: "ping with 125 bytes", send: [][]byte{ping(full)}, pongs: pongs(full)},
		{name: "ping with 125 bytes one byte per write", send: [][]byte{ping(full)}, chop: 1, pongs: pongs(full)},
		{name: "ping with 126 bytes", send: [][]byte{ping(full + "x")}, closeCode: 1002},
		{name: "unsolicited pong without payload", send: [][]byte{pong("")}},
		{name: "unsolicited pong with payload", send: [][]byte{pong("unsolicited")}},
		{name: "unsolicited pong then ping", send: [][]byte{pong("unsolicited"), ping("pinged")}, pongs: pongs("pinged")},
		{name: "10 pings in one write", send: tenPings, pongs: tenPongs},
		{name: "10 pings one byte per write", send: tenPings, chop: 1, pongs: tenPongs},
		{name: "pong with 126 bytes", send: [][]byte{pong(full + "x")}, closeCode: 1002},
	})
}

// Sections 3 and 4, and 5.2 of RFC 6455: reserved bits without an extension,
// reserved opcodes and unmasked client frames fail the connection with 1002; what
// came before them was handled, nothing after them is.
func TestRFC6455ReservedAndUnmasked(t *testing.T) {
	t.Parallel()
	ok := sendJSON("ok", "before")
	okWant := sendFrame("ok", "before")
	var cases []wireCase
	for _, rsv := range []byte{1, 2, 3, 4, 5, 6, 7} {
		cases = append(cases,
			wireCase{name: fmt.Sprintf("RSV %03b on text", rsv), send: [][]byte{frameBytes(true, rsv, ws.OpText, true, sendJSON("r", "rsv"))}, closeCode: 1002},
			wireCase{name: fmt.Sprintf("RSV %03b on ping after a message, ping after", rsv),
				send:      [][]byte{text(true, ok), frameBytes(true, rsv, ws.OpPing, true, []byte("rsv")), ping("after")},
				closeCode: 1002, frames: frames(okWant)},
		)
	}
	cases = append(cases,
		wireCase{name: "RSV on a continuation", send: [][]byte{text(false, ok[:5]), frameBytes(true, 4, ws.OpContinuation, true, ok[5:])}, closeCode: 1002},
		wireCase{name: "RSV on close", send: [][]byte{frameBytes(true, 4, ws.OpClose, true, ws.NewCloseFrameBody(1000, ""))}, closeCode: 1002},
		wireCase{name: "RSV on binary", enc: wire.Proto, send: [][]byte{frameBytes(true, 2, ws.OpBinary, true, []byte{1})}, closeCode: 1002},
	)
	for op := ws.OpCode(3); op <= 0xf; op++ {
		if op >= ws.OpClose && op <= ws.OpPong {
			continue
		}
		cases = append(cases,
			wireCase{name: fmt.Sprintf("opcode %#x", byte(op)), send: [][]byte{maskedFrame(true, op, nil)}, closeCode: 1002},
			wireCase{name: fmt.Sprintf("opcode %#x with payload between a message and a ping", byte(op)),
				send:      [][]byte{text(true, ok), maskedFrame(true, op, []byte("reserved")), ping("after")},
				closeCode: 1002, frames: frames(okWant)},
		)
	}
	cases = append(cases,
		wireCase{name: "unmasked text", send: [][]byte{frameBytes(true, 0, ws.OpText, false, ok)}, closeCode: 1002},
		wireCase{name: "unmasked ping", send: [][]byte{frameBytes(true, 0, ws.OpPing, false, []byte("p"))}, closeCode: 1002},
		wireCase{name: "unmasked close", send: [][]byte{frameBytes(true, 0, ws.OpClose, false, ws.NewCloseFrameBody(1000, ""))}, closeCode: 1002},
		wireCase{name: "unmasked continuation", send: [][]byte{text(false, ok[:5]), frameBytes(true, 0, ws.OpContinuation, false, ok[5:])}, closeCode: 1002},
	)
	runWireCases(t, cases)
}

// Section 5: fragmented messages, and fragmentation errors.
func TestRFC6455Fragmentation(t *testing.T) {
	t.Parallel()
	msg := sendJSON("frag", "fragmented message")
	want := sendFrame("frag", "fragmented message")
	two := fragments(ws.OpText, msg, 20)
	five := fragments(ws.OpText, msg, 10, 20, 30, 40)
	withPings := [][]byte{five[0], ping("p1"), five[1], five[2], ping("p2"), pong("ignored"), ping("p3"), five[3], five[4]}
	atLimit, atLimitWant := sized(t, 1024)
	pmsg, pwant := protoSized(t, 300)
	runWireCases(t, []wireCase{
		{name: "2 fragments", send: two, frames: frames(want)},
		{name: "2 fragments one byte per write", send: two, chop: 1, frames: frames(want)},
		{name: "5 fragments", send: five, frames: frames(want)},
		{name: "empty first, middle and last fragments", send: fragments(ws.OpText, msg, 0, 0, 20, len(msg)), frames: frames(want)},
		{name: "one fragment per byte", send: bytewise(msg), frames: frames(want)},
		{name: "binary in 3 fragments", enc: wire.Proto, send: fragments(ws.OpBinary, pmsg, 100, 200), frames: frames(pwant)},
		{name: "pings between fragments", send: withPings, pongs: pongs("p1", "p2", "p3"), frames: frames(want)},
		{name: "pings between fragments one byte per write", send: withPings, chop: 1, pongs: pongs("p1", "p2", "p3"), frames: frames(want)},
		{name: "a ping between fragments at the message limit", send: [][]byte{text(false, atLimit[:1000]), ping(strings.Repeat("p", 125)),
			cont(true, atLimit[1000:])}, pongs: pongs(strings.Repeat("p", 125)), frames: frames(atLimitWant)},
		{name: "a close between fragments", send: [][]byte{two[0], closeFrame(1000, ""), two[1]}, closeCode: 1000},
		{name: "message after a fragmented one", send: [][]byte{two[0], two[1], text(true, sendJSON("next", "x"))},
			frames: frames(want, sendFrame("next", "x"))},
		{name: "continuation without a start, final", send: [][]byte{cont(true, msg)}, closeCode: 1002},
		{name: "continuation without a start, not final", send: [][]byte{cont(false, msg)}, closeCode: 1002},
		{name: "continuation after a complete message", send: [][]byte{two[0], two[1], cont(false, msg), text(true, msg)},
			closeCode: 1002, frames: frames(want)},
		{name: "text inside a fragmented text", send: [][]byte{two[0], text(true, msg)}, closeCode: 1002},
		{name: "text start inside a fragmented text", send: [][]byte{two[0], text(false, msg)}, closeCode: 1002},
		{name: "binary inside a fragmented text", send: [][]byte{two[0], maskedFrame(true, ws.OpBinary, msg)}, closeCode: 1002},
		{name: "fragmented ping", send: [][]byte{maskedFrame(false, ws.OpPing, []byte("frag")), cont(true, []byte("ment"))}, closeCode: 1002},
		{name: "fragmented pong", send: [][]byte{maskedFrame(false, ws.OpPong, []byte("frag")), cont(true, []byte("ment"))}, closeCode: 1002},
		{name: "fragmented close", send: [][]byte{maskedFrame(false, ws.OpClose, ws.NewCloseFrameBody(1000, ""))}, closeCode: 1002},
		{name: "fragments over the message limit", send: [][]byte{text(false, atLimit[:1000]), cont(true, append(bytes.Clone(atLimit[1000:]), ' '))},
			closeCode: 1009},
	})
}

// utf8Send is a JSON send frame whose text is s, byte for byte (s may be invalid).
func utf8Send(s string) []byte {
	return []byte(`{"type":"send","id":"u","to":"bob","text":"` + s + `"}`)
}

// Section 6: text messages must be valid UTF-8 (RFC 6455 §8.1: otherwise fail the
// connection with 1007), checked on the whole message, so that a code point may be
// split across fragments.
func TestRFC6455UTF8(t *testing.T) {
	t.Parallel()
	valid := []string{
		"Hello-µ@ßöäüàá-UTF-8!!",
		"κόσμε",
		"\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
		"\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
	}
	invalid := []string{
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // a surrogate in κόσμε
		"\x80", "\xbf", "\x80\xbf\x80", // continuation bytes alone
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xc1\xbf", "\xc0\x80", // overlong
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", // surrogates
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", // beyond U+10FFFF
		"\xfe", "\xff", "\xfe\xfe\xff\xff",
		"\xce", "\xe1\xbd", "\xf0\x90\x80", // cut short
		"a\xc2 b", // a lead byte then ASCII
	}
	var cases []wireCase
	for i, s := range valid {
		msg := utf8Send(s)
		cases = append(cases,
			wireCase{name: fmt.Sprintf("valid %d %q", i, s), send: [][]byte{text(true, msg)}, frames: frames(sendFrame("u", s))},
			wireCase{name: fmt.Sprintf("valid %d %q one fragment per byte", i, s), send: bytewise(msg), frames: frames(sendFrame("u", s))},
		)
	}
	for i, s := range invalid {
		msg := utf8Send(s)
		at := bytes.Index(msg, []byte(s))
		cases = append(cases,
			wireCase{name: fmt.Sprintf("invalid %d %q", i, s), send: [][]byte{text(true, msg)}, closeCode: 1007},
			wireCase{name: fmt.Sprintf("invalid %d %q in 3 fragments", i, s), send: fragments(ws.OpText, msg, at, at+1), closeCode: 1007},
			wireCase{name: fmt.Sprintf("invalid %d %q one fragment per byte", i, s), send: bytewise(msg), closeCode: 1007},
		)
	}
	kosme := utf8Send("κόσμε")
	at := bytes.Index(kosme, []byte("κ"))
	cases = append(cases,
		wireCase{name: "a code point split across fragments", send: fragments(ws.OpText, kosme, at+1, at+3), frames: frames(sendFrame("u", "κόσμε"))},
		wireCase{name: "a code point cut at the end of the message", send: fragments(ws.OpText, []byte("\xce"), 0), closeCode: 1007},
		wireCase{name: "invalid text that is not JSON", send: [][]byte{text(true, []byte("\xff\xfe"))}, closeCode: 1007},
		wireCase{name: "invalid text after a valid message", send: [][]byte{text(true, kosme), text(true, utf8Send("\xff")), ping("after")},
			closeCode: 1007, frames: frames(sendFrame("u", "κόσμε"))},
		wireCase{name: "invalid text on a proto socket", enc: wire.Proto, send: [][]byte{text(true, []byte("\xff"))}, closeCode: 1007},
		wireCase{name: "valid text on a proto socket", enc: wire.Proto, send: [][]byte{text(true, kosme)}, bad: 1},
		wireCase{name: "binary is not UTF-8 checked", enc: wire.Proto, send: [][]byte{maskedFrame(true, ws.OpBinary, []byte("\xff\xfe"))}, bad: 1},
		wireCase{name: "binary on a JSON socket is not UTF-8 checked", send: [][]byte{maskedFrame(true, ws.OpBinary, []byte("\xff"))}, bad: 1},
	)
	runWireCases(t, cases)
}

// rawClose is a close frame with any body.
func rawClose(body []byte) []byte { return maskedFrame(true, ws.OpClose, body) }

func codeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// Section 7: the closing handshake. The server answers a valid close frame with
// the same code (RFC 6455 §5.5.1: "typically echos the status code it received";
// 1000 for a close frame without a code), and an invalid one with 1002 (1007 for a
// reason that is not UTF-8); then it sends nothing else and closes the connection.
// Codes: RFC 6455 §7.4 and IANA's registry (1012-1014 are registered, 1015 may not
// be sent); Autobahn's 7.7 and 7.9 lists.
func TestRFC6455Close(t *testing.T) {
	t.Parallel()
	msg := sendJSON("before", "close")
	before := sendFrame("before", "close")
	var cases []wireCase
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, wireCase{name: fmt.Sprintf("code %d is echoed", code), send: [][]byte{rawClose(codeBody(code, ""))},
			closeCode: int(code)})
	}
	for _, code := range []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, wireCase{name: fmt.Sprintf("code %d is a protocol error", code), send: [][]byte{rawClose(codeBody(code, ""))},
			closeCode: 1002})
	}
	cases = append(cases,
		wireCase{name: "no body", send: [][]byte{rawClose(nil)}, closeCode: 1000},
		wireCase{name: "1-byte body", send: [][]byte{rawClose([]byte{0x03})}, closeCode: 1002},
		wireCase{name: "UTF-8 reason", send: [][]byte{rawClose(codeBody(1000, "κόσμε"))}, closeCode: 1000},
		wireCase{name: "123-byte reason", send: [][]byte{rawClose(codeBody(1000, strings.Repeat("*", 123)))}, closeCode: 1000},
		wireCase{name: "124-byte reason", send: [][]byte{rawClose(codeBody(1000, strings.Repeat("*", 124)))}, closeCode: 1002},
		wireCase{name: "invalid UTF-8 reason", send: [][]byte{rawClose(codeBody(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"))},
			closeCode: 1007},
		wireCase{name: "reason cut inside a code point", send: [][]byte{rawClose(codeBody(4000, "abc\xce"))}, closeCode: 1007},
		wireCase{name: "invalid code with an invalid reason", send: [][]byte{rawClose(codeBody(1005, "\xff"))}, closeCode: 1002},
		wireCase{name: "close one byte per write", send: [][]byte{rawClose(codeBody(3000, "bye"))}, chop: 1, closeCode: 3000},
		wireCase{name: "message then close in one write", send: [][]byte{text(true, msg), closeFrame(1000, "")}, closeCode: 1000, frames: frames(before)},
		wireCase{name: "ping after close", send: [][]byte{closeFrame(1000, ""), ping("late")}, closeCode: 1000},
		wireCase{name: "text after close", send: [][]byte{closeFrame(1000, ""), text(true, msg)}, closeCode: 1000},
		wireCase{name: "close twice", send: [][]byte{closeFrame(1000, ""), closeFrame(1001, "")}, closeCode: 1000},
		wireCase{name: "fragment, close, fragment", send: [][]byte{text(false, msg[:10]), closeFrame(1000, ""), cont(true, msg[10:])}, closeCode: 1000},
		wireCase{name: "message, close, ping", send: [][]byte{text(true, msg), closeFrame(1000, ""), ping("late")}, closeCode: 1000, frames: frames(before)},
		wireCase{name: "ping, close, ping", send: [][]byte{ping("early"), closeFrame(4001, "bye"), ping("late")}, pongs: pongs("early"), closeCode: 4001},
	)
	runWireCases(t, cases)
}

// The server's own close frames (here for a protocol error) are followed by
// nothing either, even when the client keeps sending.
func TestRFC6455NothingAfterServerClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	c.send(t, true, ws.OpCode(0x3), nil)
	f := c.readFrame(t)
	require.Equal(t, ws.OpClose, f.Header.OpCode)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	require.Equal(t, ws.StatusProtocolError, code)
	// The client goes on as if it had not read the close frame.
	_, err := c.Write(append(ping("ignored"), text(true, sendJSON("x", "ignored"))...))
	require.NoError(t, err)
	rest, err := io.ReadAll(c.r)
	require.NoError(t, err)
	require.Empty(t, rest)
	r := h.handler(t, 0)
	requireClosedOnce(t, h, r)
	require.Zero(t, r.frameCount())
}

// handshakeRequest is an upgrade request for h that each case breaks in one way.
type handshakeRequest struct {
	method, target, proto string
	header                map[string]string // "" value: the header is left out
}

func (r handshakeRequest) bytes(addr string) []byte {
	h := map[string]string{
		"Host":                  addr,
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version": "13",
		"Authorization":         "Bearer good",
	}
	for k, v := range r.header {
		h[k] = v
	}
	method, target, proto := "GET", "/v1/ws", "HTTP/1.1"
	if r.method != "" {
		method = r.method
	}
	if r.target != "" {
		target = r.target
	}
	if r.proto != "" {
		proto = r.proto
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", method, target, proto)
	for _, k := range []string{"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Authorization"} {
		if h[k] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, h[k])
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// A refused upgrade gets an HTTP error, and then its connection is closed: it is
// not kept alive for another request (a second, valid upgrade on it gets nothing).
func TestRFC6455RefusedHandshake(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		req    handshakeRequest
		status int
		header [2]string // a header the answer must carry
	}{
		{name: "no token", req: handshakeRequest{header: map[string]string{"Authorization": ""}}, status: 401},
		{name: "bad token", req: handshakeRequest{header: map[string]string{"Authorization": "Bearer bad"}}, status: 401},
		{name: "bad encoding", req: handshakeRequest{target: "/v1/ws?encoding=xml"}, status: 400},
		{name: "HEAD", req: handshakeRequest{method: "HEAD"}, status: 405},
		{name: "HTTP/1.0", req: handshakeRequest{proto: "HTTP/1.0"}, status: 505},
		{name: "no Upgrade", req: handshakeRequest{header: map[string]string{"Upgrade": ""}}, status: 400},
		{name: "Upgrade: h2c", req: handshakeRequest{header: map[string]string{"Upgrade": "h2c"}}, status: 400},
		{name: "no Connection", req: handshakeRequest{header: map[string]string{"Connection": ""}}, status: 400},
		{name: "Connection: keep-alive", req: handshakeRequest{header: map[string]string{"Connection": "keep-alive"}}, status: 400},
		{name: "no Sec-WebSocket-Key", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Key": ""}}, status: 400},
		{name: "short key", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZQ=="}}, status: 400},
		{name: "key not base64", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}}, status: 400},
		{name: "key of 18 bytes", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAA"}}, status: 400},
		{name: "no Sec-WebSocket-Version", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Version": ""}}, status: 400},
		{name: "version 8", req: handshakeRequest{header: map[string]string{"Sec-WebSocket-Version": "8"}}, status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		// Every method on /v1/ws reaches the gateway (as internal/node routes it),
		// and the handshake refuses all but GET.
		{name: "POST", req: handshakeRequest{method: "POST"}, status: 405},
		{name: "PUT", req: handshakeRequest{method: "PUT"}, status: 405},
		{name: "POST without a token", req: handshakeRequest{method: "POST", header: map[string]string{"Authorization": ""}}, status: 401},
	}
	h := newHarness(t, defaultConfig(), nil) // no case gets a socket
	t.Run("refused", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				refusedHandshake(t, h, tc.req, tc.status, tc.header)
			})
		}
	})
	require.Empty(t, h.recorders())
	require.Zero(t, h.srv.Count())
	t.Run("a good upgrade", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := rawUpgrade(t, h.addr, nil)
		c.send(t, true, ws.OpPing, []byte("up"))
		f := c.readFrame(t)
		require.Equal(t, ws.OpPong, f.Header.OpCode)
		require.Equal(t, 1, h.srv.Count())
	})
}

// refusedHandshake sends req on a connection of its own and checks the answer, and
// that the connection is closed afterwards.
func refusedHandshake(t *testing.T, h *harness, req handshakeRequest, status int, header [2]string) {
	conn, err := net.DialTimeout("tcp", h.addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
	_, err = conn.Write(req.bytes(h.addr))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, res.Body)
	require.NoError(t, err)
	require.Equal(t, status, res.StatusCode)
	if header[0] != "" {
		require.Equal(t, header[1], res.Header.Get(header[0]))
	}
	// Whatever comes next on this connection is not served.
	_, _ = conn.Write(handshakeRequest{}.bytes(h.addr))
	rest, err := io.ReadAll(br)
	if err != nil {
		require.True(t, isReset(err), "the connection should be closed after a refused upgrade: %v", err)
	}
	require.Empty(t, rest, "the connection served another request after a refused upgrade")
	require.Empty(t, h.recorders())
	require.Zero(t, h.srv.Count())
}
