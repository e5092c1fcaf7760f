package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Every wait in these tests is bounded by this, so that nothing hangs.
const waitTimeout = 10 * time.Second

func defaultConfig() gateway.Config {
	return gateway.Config{Workers: 8, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxFrameBytes: 1024, FrameRate: 1000, FrameBurst: 1000}
}

// recorder is a fake Handler: it records what the gateway hands it.
type recorder struct {
	sock      *gateway.Socket
	id        gateway.Identity
	prefixLen int // bytes buffered past the handshake, seen at Attach

	ignoreShutdown bool
	onFrame        func(s *gateway.Socket, f *parleypb.ClientFrame)

	mu        sync.Mutex
	events    []string // "frame", "bad", "closed", "shutdown" in order
	frames    []*parleypb.ClientFrame
	bad       []error
	closed    int
	shutdowns int
	idles     int
}

func (r *recorder) Frame(f *parleypb.ClientFrame) {
	r.mu.Lock()
	r.events = append(r.events, "frame")
	r.frames = append(r.frames, f)
	on := r.onFrame
	r.mu.Unlock()
	if on != nil {
		on(r.sock, f)
	}
}

func (r *recorder) BadFrame(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "bad")
	r.bad = append(r.bad, err)
}

func (r *recorder) Closed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "closed")
	r.closed++
}

// Shutdown closes with 1001 asynchronously, as the connection actor eventually does
// after flushing.
func (r *recorder) Shutdown() {
	r.mu.Lock()
	r.events = append(r.events, "shutdown")
	r.shutdowns++
	ignore := r.ignoreShutdown
	r.mu.Unlock()
	if !ignore {
		go r.sock.Close(1001, "server shutting down")
	}
}

// Idle records that the gateway said only heartbeats came.
func (r *recorder) Idle() {
	r.mu.Lock()
	r.events = append(r.events, "idle")
	r.idles++
	r.mu.Unlock()
}

func (r *recorder) idleCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idles
}

func (r *recorder) snapshot() (frames []*parleypb.ClientFrame, bad []error, closed int, events []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*parleypb.ClientFrame(nil), r.frames...), append([]error(nil), r.bad...),
		r.closed, append([]string(nil), r.events...)
}

func (r *recorder) frameCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func (r *recorder) closedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// harness is a real gateway.Server behind httptest.
type harness struct {
	srv  *gateway.Server
	http *httptest.Server
	base string // http://127.0.0.1:port
	addr string // 127.0.0.1:port

	mu       sync.Mutex
	handlers []*recorder
	setup    func(*recorder)
}

func authenticate(r *http.Request) (gateway.Identity, error) {
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return gateway.Identity{}, gateway.AuthError
		}
		token = strings.TrimSpace(t)
	}
	if token != "good" {
		return gateway.Identity{}, gateway.AuthError
	}
	return gateway.Identity{User: "alice", Device: "phone"}, nil
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	http.Error(w, code+": "+msg, status)
}

// newHarness starts a gateway; setup (optional) configures each new fake handler.
func newHarness(tb testing.TB, cfg gateway.Config, setup func(*recorder)) *harness {
	tb.Helper()
	return newHarnessListener(tb, cfg, setup, nil)
}

// newHarnessListener is newHarness with the HTTP listener wrapped by wrap (if set).
func newHarnessListener(tb testing.TB, cfg gateway.Config, setup func(*recorder), wrap func(net.Listener) net.Listener) *harness {
	tb.Helper()
	h := &harness{setup: setup}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.New(cfg, log, authenticate, func(s *gateway.Socket, id gateway.Identity) gateway.Handler {
		r := &recorder{sock: s, id: id, prefixLen: gateway.PrefixLen(s)}
		if h.setup != nil {
			h.setup(r)
		}
		h.mu.Lock()
		h.handlers = append(h.handlers, r)
		h.mu.Unlock()
		return r
	})
	require.NoError(tb, err)
	h.srv = srv
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/ws", func(w http.ResponseWriter, r *http.Request) { srv.ServeHTTP(w, r, writeErr) })
	h.http = httptest.NewUnstartedServer(mux)
	if wrap != nil {
		h.http.Listener = wrap(h.http.Listener)
	}
	h.http.Start()
	h.base = h.http.URL
	h.addr = strings.TrimPrefix(h.http.URL, "http://")
	tb.Cleanup(func() {
		h.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { srv.Shutdown(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			tb.Error("gateway Shutdown did not return")
		}
	})
	return h
}

func (h *harness) recorders() []*recorder {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*recorder(nil), h.handlers...)
}

// handler waits for the i-th attached handler.
func (h *harness) handler(tb testing.TB, i int) *recorder {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("handler %d attached", i), func() bool { return len(h.recorders()) > i })
	return h.recorders()[i]
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dial opens a client.Conn with the good token.
func (h *harness) dial(tb testing.TB, enc wire.Encoding) *client.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, h.base, "good", enc)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Drop() })
	return c
}

// rawConn is a WebSocket connection written frame by frame.
type rawConn struct {
	net.Conn
	r io.Reader // buffered handshake reader, then the connection
}

func (h *harness) dialRaw(tb testing.TB, enc wire.Encoding) *rawConn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer good"}})}
	conn, br, _, err := d.Dial(ctx, "ws://"+h.addr+"/v1/ws?encoding="+enc.String())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = conn.Close() })
	require.NoError(tb, conn.SetDeadline(time.Now().Add(waitTimeout)))
	rc := &rawConn{Conn: conn, r: conn}
	if br != nil {
		rc.r = br
	}
	return rc
}

// maskedFrame is a client frame on the wire (masked, as clients must).
func maskedFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	f := ws.NewFrame(op, fin, bytes.Clone(payload))
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(f))
	if err != nil {
		panic(err)
	}
	return b
}

func (c *rawConn) send(tb testing.TB, fin bool, op ws.OpCode, payload []byte) {
	tb.Helper()
	_, err := c.Write(maskedFrame(fin, op, payload))
	require.NoError(tb, err)
}

func (c *rawConn) readFrame(tb testing.TB) ws.Frame {
	tb.Helper()
	f, err := ws.ReadFrame(c.r)
	require.NoError(tb, err)
	return f
}

// expectClose reads until the server's close frame and checks its code; then the
// server must end its side of the stream (no hang).
func (c *rawConn) expectClose(tb testing.TB, code int) {
	tb.Helper()
	for {
		f := c.readFrame(tb)
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		got, reason := ws.ParseCloseFrameData(f.Payload)
		require.Equal(tb, code, int(got), "close code (reason %q)", reason)
		break
	}
	_, err := ws.ReadFrame(c.r)
	require.ErrorIs(tb, err, io.EOF, "the server should end the stream after its close frame")
}

func sendFrame(id, text string) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, To: "bob", Text: text}}}
}

func sendJSON(id, text string) []byte {
	return []byte(`{"type":"send","id":"` + id + `","to":"bob","text":"` + text + `"}`)
}

// jsonOfSize is a valid send frame of exactly n bytes.
func jsonOfSize(tb testing.TB, n int) []byte {
	base := len(sendJSON("big", ""))
	require.GreaterOrEqual(tb, n, base)
	b := sendJSON("big", strings.Repeat("x", n-base))
	require.Len(tb, b, n)
	return b
}

func requireFrame(tb testing.TB, want, got *parleypb.ClientFrame) {
	tb.Helper()
	require.Truef(tb, proto.Equal(want, got), "want %v, got %v", want, got)
}

// requireClosedOnce waits for Closed and checks it stays at one call, with the
// socket gone from the server.
func requireClosedOnce(tb testing.TB, h *harness, r *recorder) {
	tb.Helper()
	waitFor(tb, "Handler.Closed", func() bool { return r.closedCount() > 0 })
	waitFor(tb, "Count() == 0", func() bool { return h.srv.Count() == 0 })
	time.Sleep(20 * time.Millisecond)
	require.Equal(tb, 1, r.closedCount(), "Closed must be called exactly once")
}

// 1. Frames reach Handler.Frame decoded, in both encodings.
func TestFrameDecoded(t *testing.T) {
	t.Parallel()
	for _, enc := range []wire.Encoding{wire.JSON, wire.Proto} {
		t.Run(enc.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dial(t, enc)
			want := sendFrame("m1", "hello ☃")
			require.NoError(t, c.Write(want))
			require.NoError(t, c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}))
			r := h.handler(t, 0)
			waitFor(t, "2 frames", func() bool { return r.frameCount() == 2 })
			frames, bad, closed, _ := r.snapshot()
			requireFrame(t, want, frames[0])
			require.Equal(t, "ping", wire.TypeOf(frames[1]))
			require.Empty(t, bad)
			require.Zero(t, closed)
			require.Equal(t, gateway.Identity{User: "alice", Device: "phone"}, r.id)
			require.Equal(t, 1, h.srv.Count())
		})
	}
}

// The token may also come in the query (browsers cannot set headers on WebSockets).
func TestTokenInQuery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws://"+h.addr+"/v1/ws?token=good")
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
	_, err = conn.Write(maskedFrame(true, ws.OpText, sendJSON("q", "hi")))
	require.NoError(t, err)
	r := h.handler(t, 0)
	waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
}

// 2. A fragmented text message arrives as one frame.
func TestFragmentedMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	msg := sendJSON("frag", "in three pieces")
	c.send(t, false, ws.OpText, msg[:10])
	c.send(t, false, ws.OpContinuation, msg[10:30])
	c.send(t, true, ws.OpContinuation, msg[30:])
	// A second message right after: the assembly state must have been reset.
	c.send(t, true, ws.OpText, sendJSON("after", "x"))
	r := h.handler(t, 0)
	waitFor(t, "2 frames", func() bool { return r.frameCount() == 2 })
	frames, bad, _, _ := r.snapshot()
	require.Empty(t, bad)
	requireFrame(t, sendFrame("frag", "in three pieces"), frames[0])
	requireFrame(t, sendFrame("after", "x"), frames[1])
}

// A fragmented binary message on a proto socket.
func TestFragmentedProto(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.Proto)
	want := sendFrame("pb", "binary pieces")
	msg, err := wire.EncodeClient(wire.Proto, want)
	require.NoError(t, err)
	c.send(t, false, ws.OpBinary, msg[:3])
	c.send(t, true, ws.OpContinuation, msg[3:])
	r := h.handler(t, 0)
	waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
	frames, _, _, _ := r.snapshot()
	requireFrame(t, want, frames[0])
}

// 3. A ping inside a fragmented message is answered at once, and the message still
// arrives whole.
func TestPingInsideFragmentedMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	msg := sendJSON("pinged", "around a ping")
	c.send(t, false, ws.OpText, msg[:15])
	c.send(t, true, ws.OpPing, []byte("are you there"))
	// The pong comes while the message is still incomplete.
	f := c.readFrame(t)
	require.Equal(t, ws.OpPong, f.Header.OpCode)
	require.Equal(t, "are you there", string(f.Payload))
	r := h.handler(t, 0)
	require.Zero(t, r.frameCount())
	c.send(t, false, ws.OpContinuation, msg[15:20])
	c.send(t, true, ws.OpPong, []byte("unsolicited")) // ignored
	c.send(t, true, ws.OpContinuation, msg[20:])
	waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
	frames, bad, closed, _ := r.snapshot()
	require.Empty(t, bad)
	require.Zero(t, closed)
	requireFrame(t, sendFrame("pinged", "around a ping"), frames[0])
}

// A plain ping between messages is answered too.
func TestPing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	c.send(t, true, ws.OpPing, nil)
	f := c.readFrame(t)
	require.Equal(t, ws.OpPong, f.Header.OpCode)
	require.Empty(t, f.Payload)
	c.send(t, true, ws.OpPing, []byte("p2"))
	f = c.readFrame(t)
	require.Equal(t, ws.OpPong, f.Header.OpCode)
	require.Equal(t, "p2", string(f.Payload))
	require.Equal(t, 1, h.srv.Count())
}

// 4. Frames over MaxFrameBytes close with 1009.
func TestFrameTooBig(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T, c *rawConn){
		"single frame": func(t *testing.T, c *rawConn) {
			c.send(t, true, ws.OpText, jsonOfSize(t, 1025))
		},
		"huge declared length": func(t *testing.T, c *rawConn) {
			// 64-bit length of 1 TiB, masked, and no payload: the server must not
			// wait for it nor allocate it.
			hdr := []byte{0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4}
			_, err := c.Write(hdr)
			require.NoError(t, err)
		},
		"fragmented total": func(t *testing.T, c *rawConn) {
			part := bytes.Repeat([]byte("x"), 400)
			c.send(t, false, ws.OpText, part)
			c.send(t, false, ws.OpContinuation, part)
			c.send(t, true, ws.OpContinuation, part) // 1200 > 1024
		},
		"fragmented total one over": func(t *testing.T, c *rawConn) {
			msg := jsonOfSize(t, 1025)
			c.send(t, false, ws.OpText, msg[:512])
			c.send(t, true, ws.OpContinuation, msg[512:])
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dialRaw(t, wire.JSON)
			send(t, c)
			c.expectClose(t, wire.CloseTooBig)
			r := h.handler(t, 0)
			requireClosedOnce(t, h, r)
			frames, bad, _, _ := r.snapshot()
			require.Empty(t, frames)
			require.Empty(t, bad)
		})
	}
}

// Exactly MaxFrameBytes is allowed, whole or in fragments.
func TestFrameAtLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	msg := jsonOfSize(t, 1024)
	c.send(t, true, ws.OpText, msg)
	c.send(t, false, ws.OpText, msg[:1000])
	c.send(t, true, ws.OpContinuation, msg[1000:])
	r := h.handler(t, 0)
	waitFor(t, "2 frames", func() bool { return r.frameCount() == 2 })
	frames, bad, closed, _ := r.snapshot()
	require.Empty(t, bad)
	require.Zero(t, closed)
	require.Equal(t, "big", frames[0].GetSend().GetId())
	require.Len(t, frames[1].GetSend().GetText(), len(frames[0].GetSend().GetText()))
}

// 5, 6. Protocol errors close with 1002.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T, c *rawConn){
		"unmasked frame": func(t *testing.T, c *rawConn) {
			b, err := ws.CompileFrame(ws.NewTextFrame(sendJSON("u", "unmasked")))
			require.NoError(t, err)
			_, err = c.Write(b)
			require.NoError(t, err)
		},
		"continuation without start": func(t *testing.T, c *rawConn) {
			c.send(t, true, ws.OpContinuation, sendJSON("c", "orphan"))
		},
		"reserved bits": func(t *testing.T, c *rawConn) {
			f := ws.MaskFrameInPlace(ws.NewTextFrame(sendJSON("r", "rsv")))
			f.Header.Rsv = ws.Rsv(true, false, false)
			b, err := ws.CompileFrame(f)
			require.NoError(t, err)
			_, err = c.Write(b)
			require.NoError(t, err)
		},
		"reserved opcode": func(t *testing.T, c *rawConn) {
			c.send(t, true, ws.OpCode(0x3), []byte("x"))
		},
		"ping over 125 bytes": func(t *testing.T, c *rawConn) {
			c.send(t, true, ws.OpPing, bytes.Repeat([]byte("p"), 126))
		},
		"fragmented ping": func(t *testing.T, c *rawConn) {
			c.send(t, false, ws.OpPing, []byte("p"))
		},
		"new message inside a fragmented one": func(t *testing.T, c *rawConn) {
			c.send(t, false, ws.OpText, []byte(`{"type":`))
			c.send(t, true, ws.OpText, sendJSON("n", "interloper"))
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dialRaw(t, wire.JSON)
			send(t, c)
			c.expectClose(t, int(ws.StatusProtocolError))
			r := h.handler(t, 0)
			requireClosedOnce(t, h, r)
			frames, bad, _, _ := r.snapshot()
			require.Empty(t, frames)
			require.Empty(t, bad)
		})
	}
}

// 7. Frames beyond the burst close with 1008; the burst reached the handler.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.FrameRate, cfg.FrameBurst = 1, 3
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	var all []byte
	for i := range 8 {
		all = append(all, maskedFrame(true, ws.OpText, sendJSON(fmt.Sprint(i), "flood"))...)
	}
	_, err := c.Write(all)
	require.NoError(t, err)
	c.expectClose(t, wire.ClosePolicy)
	r := h.handler(t, 0)
	requireClosedOnce(t, h, r)
	frames, bad, _, events := r.snapshot()
	require.Empty(t, bad)
	require.Len(t, frames, 3)
	for i, f := range frames {
		require.Equal(t, fmt.Sprint(i), f.GetSend().GetId())
	}
	require.Equal(t, []string{"frame", "frame", "frame", "closed"}, events)
}

// Bad frames count against the rate limit too.
func TestRateLimitCountsBadFrames(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.FrameRate, cfg.FrameBurst = 1, 2
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	for range 3 {
		c.send(t, true, ws.OpText, []byte("not json"))
	}
	c.expectClose(t, wire.ClosePolicy)
	r := h.handler(t, 0)
	requireClosedOnce(t, h, r)
	_, bad, _, _ := r.snapshot()
	require.Len(t, bad, 2)
}

// 8. Undecodable frames go to BadFrame and the socket stays open.
func TestBadFrames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		enc  wire.Encoding
		op   ws.OpCode
		data []byte
	}{
		{"bad json", wire.JSON, ws.OpText, []byte(`{"type":"send",`)},
		{"unknown type", wire.JSON, ws.OpText, []byte(`{"type":"nope"}`)},
		{"invalid send", wire.JSON, ws.OpText, []byte(`{"type":"send","id":"x","to":"bob"}`)},
		{"binary on json", wire.JSON, ws.OpBinary, sendJSON("b", "binary")},
		{"text on proto", wire.Proto, ws.OpText, sendJSON("t", "text")},
		{"bad protobuf", wire.Proto, ws.OpBinary, []byte{0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dial(t, tc.enc)
			require.NoError(t, c.WriteRaw(tc.op, tc.data))
			good := sendFrame("good", "still open")
			require.NoError(t, c.Write(good))
			r := h.handler(t, 0)
			waitFor(t, "the good frame", func() bool { return r.frameCount() == 1 })
			frames, bad, closed, events := r.snapshot()
			require.Equal(t, []string{"bad", "frame"}, events)
			require.Zero(t, closed)
			requireFrame(t, good, frames[0])
			var fe *wire.FrameError
			require.ErrorAs(t, bad[0], &fe)
			require.Equal(t, wire.CodeBadRequest, fe.Code)
			require.Equal(t, 1, h.srv.Count())
		})
	}
}

// rawUpgrade writes the upgrade request by hand with extra bytes in the same write.
func rawUpgrade(tb testing.TB, addr string, extra []byte) *rawConn {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = conn.Close() })
	require.NoError(tb, conn.SetDeadline(time.Now().Add(waitTimeout)))
	req := "GET /v1/ws?encoding=json HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer good\r\n\r\n"
	_, err = conn.Write(append([]byte(req), extra...))
	require.NoError(tb, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(tb, err)
	require.Equal(tb, http.StatusSwitchingProtocols, res.StatusCode)
	require.Equal(tb, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", res.Header.Get("Sec-WebSocket-Accept"))
	return &rawConn{Conn: conn, r: br}
}

// 9. Frames sent in the same TCP write as the upgrade request are not lost.
func TestBytesAfterHandshake(t *testing.T) {
	t.Parallel()
	one := maskedFrame(true, ws.OpText, sendJSON("p1", "in the prefix"))
	two := maskedFrame(true, ws.OpText, sendJSON("p2", "also in the prefix"))
	t.Run("one frame", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		rawUpgrade(t, h.addr, one)
		r := h.handler(t, 0)
		waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
		require.Equal(t, len(one), r.prefixLen, "the frame should have been buffered with the handshake")
		frames, _, _, _ := r.snapshot()
		requireFrame(t, sendFrame("p1", "in the prefix"), frames[0])
	})
	t.Run("two frames then more", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := rawUpgrade(t, h.addr, append(bytes.Clone(one), two...))
		r := h.handler(t, 0)
		waitFor(t, "2 frames", func() bool { return r.frameCount() == 2 })
		require.Equal(t, len(one)+len(two), r.prefixLen)
		// The socket is then read through the poller.
		c.send(t, true, ws.OpText, sendJSON("p3", "after"))
		waitFor(t, "3 frames", func() bool { return r.frameCount() == 3 })
		frames, _, _, _ := r.snapshot()
		for i, f := range frames {
			require.Equal(t, fmt.Sprintf("p%d", i+1), f.GetSend().GetId())
		}
	})
	t.Run("half a frame", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := rawUpgrade(t, h.addr, one[:7])
		r := h.handler(t, 0)
		require.Equal(t, 7, r.prefixLen)
		time.Sleep(20 * time.Millisecond)
		require.Zero(t, r.frameCount())
		// The rest of the frame and a whole one in a single write.
		_, err := c.Write(append(bytes.Clone(one[7:]), two...))
		require.NoError(t, err)
		waitFor(t, "2 frames", func() bool { return r.frameCount() == 2 })
		frames, _, _, _ := r.snapshot()
		requireFrame(t, sendFrame("p1", "in the prefix"), frames[0])
		requireFrame(t, sendFrame("p2", "also in the prefix"), frames[1])
	})
	t.Run("ping in the prefix", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := rawUpgrade(t, h.addr, append(maskedFrame(true, ws.OpPing, []byte("early")), one...))
		f := c.readFrame(t)
		require.Equal(t, ws.OpPong, f.Header.OpCode)
		require.Equal(t, "early", string(f.Payload))
		r := h.handler(t, 0)
		waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
	})
	t.Run("close in the prefix", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
		c := rawUpgrade(t, h.addr, append(bytes.Clone(one), maskedFrame(true, ws.OpClose, body)...))
		c.expectClose(t, int(ws.StatusNormalClosure))
		r := h.handler(t, 0)
		requireClosedOnce(t, h, r)
		_, _, _, events := r.snapshot()
		require.Equal(t, []string{"frame", "closed"}, events)
	})
}

// 10. Refused upgrades are plain HTTP answers and create no handler.
func TestRefusedUpgrade(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	upgrade := func(query, auth string) int {
		req, err := http.NewRequest(http.MethodGet, h.base+"/v1/ws"+query, nil)
		require.NoError(t, err)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Version", "13")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		cl := &http.Client{Timeout: waitTimeout}
		res, err := cl.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, upgrade("", ""))
	require.Equal(t, http.StatusUnauthorized, upgrade("", "Bearer bad"))
	require.Equal(t, http.StatusUnauthorized, upgrade("?token=bad", ""))
	require.Equal(t, http.StatusUnauthorized, upgrade("", "Basic Z29vZA=="))
	require.Equal(t, http.StatusBadRequest, upgrade("?encoding=xml", "Bearer good"))
	require.Equal(t, http.StatusBadRequest, upgrade("?encoding=JSON", "Bearer good"))

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := client.Dial(ctx, h.base, "bad", wire.JSON)
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusUnauthorized, int(se))

	require.Empty(t, h.recorders())
	require.Zero(t, h.srv.Count())
	// A good upgrade still works afterwards.
	h.dial(t, wire.JSON)
	h.handler(t, 0)
	require.Equal(t, 1, h.srv.Count())
}

// 11. The client closing: Closed once, and the socket is forgotten.
func TestClientClose(t *testing.T) {
	t.Parallel()
	t.Run("client.Close", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := h.dial(t, wire.JSON)
		require.NoError(t, c.Write(sendFrame("bye", "last words")))
		r := h.handler(t, 0)
		waitFor(t, "frame", func() bool { return r.frameCount() == 1 })
		require.Equal(t, 1, h.srv.Count())
		require.NoError(t, c.Close())
		requireClosedOnce(t, h, r)
		_, _, _, events := r.snapshot()
		require.Equal(t, []string{"frame", "closed"}, events)
	})
	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := h.dial(t, wire.Proto)
		r := h.handler(t, 0)
		require.NoError(t, c.Drop())
		requireClosedOnce(t, h, r)
	})
	for _, code := range []ws.StatusCode{ws.StatusNormalClosure, ws.StatusGoingAway, 4000} {
		t.Run(fmt.Sprintf("close %d echoed", code), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dialRaw(t, wire.JSON)
			c.send(t, true, ws.OpClose, ws.NewCloseFrameBody(code, "done"))
			c.expectClose(t, int(code))
			requireClosedOnce(t, h, h.handler(t, 0))
		})
	}
	t.Run("close without status", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := h.dialRaw(t, wire.JSON)
		c.send(t, true, ws.OpClose, nil)
		c.expectClose(t, int(ws.StatusNormalClosure))
		requireClosedOnce(t, h, h.handler(t, 0))
	})
	t.Run("server Close then client", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, defaultConfig(), nil)
		c := h.dial(t, wire.JSON)
		r := h.handler(t, 0)
		r.sock.Close(4001, "kicked")
		_, err := c.Read(waitTimeout)
		require.True(t, client.IsClose(err, 4001), "got %v", err)
		require.Error(t, r.sock.Write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}}))
		r.sock.Close(1000, "again") // no-op
		_ = c.Close()
		requireClosedOnce(t, h, r)
	})
}

// Socket.Write reaches the client in the socket's encoding.
func TestSocketWrite(t *testing.T) {
	t.Parallel()
	for _, enc := range []wire.Encoding{wire.JSON, wire.Proto} {
		t.Run(enc.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), nil)
			c := h.dial(t, enc)
			r := h.handler(t, 0)
			want := &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
				Id: "m1", MessageId: 42, Conversation: "d:alice:bob", Ts: 1700000000000}}}
			require.NoError(t, r.sock.Write(want))
			got, err := c.Read(waitTimeout)
			require.NoError(t, err)
			require.Truef(t, proto.Equal(want, got), "want %v, got %v", want, got)
			require.Error(t, r.sock.Write(&parleypb.ServerFrame{}), "a frame without a body is refused")
		})
	}
}

// 12. Shutdown closes every socket with 1001 through its handler and returns.
func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, ignore := range []bool{false, true} {
		name := "handlers close"
		if ignore {
			name = "handlers ignore shutdown, ctx expires"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, defaultConfig(), func(r *recorder) { r.ignoreShutdown = ignore })
			const n = 6
			conns := make([]*client.Conn, n)
			for i := range conns {
				conns[i] = h.dial(t, []wire.Encoding{wire.JSON, wire.Proto}[i%2])
			}
			waitFor(t, "all attached", func() bool { return h.srv.Count() == n })
			timeout := waitTimeout
			if ignore {
				timeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			done := make(chan struct{})
			start := time.Now()
			go func() { h.srv.Shutdown(ctx); close(done) }()
			for i, c := range conns {
				_, err := c.Read(waitTimeout)
				require.True(t, client.IsClose(err, 1001), "conn %d: got %v", i, err)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			if !ignore {
				require.Less(t, time.Since(start), 2*time.Second)
			}
			require.Zero(t, h.srv.Count())
			for i, r := range h.recorders() {
				r.mu.Lock()
				shutdowns, closed := r.shutdowns, r.closed
				r.mu.Unlock()
				require.Equal(t, 1, shutdowns, "handler %d", i)
				require.Equal(t, 1, closed, "handler %d", i)
			}
			// Draining: no new socket.
			ctx2, cancel2 := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel2()
			_, err := client.Dial(ctx2, h.base, "good", wire.JSON)
			var se ws.StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, http.StatusServiceUnavailable, int(se))
			require.Len(t, h.recorders(), n)
		})
	}
}

func TestShutdownIdle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	start := time.Now()
	h.srv.Shutdown(ctx)
	require.Less(t, time.Since(start), 3*time.Second)
	h.srv.Shutdown(ctx) // twice is harmless
}

// 13. Many sockets sending concurrently: every frame arrives, in order per socket.
func TestManyConnections(t *testing.T) {
	t.Parallel()
	const conns, perConn = 200, 5
	h := newHarness(t, defaultConfig(), nil)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		opened []*client.Conn
	)
	t.Cleanup(func() {
		for _, c := range opened {
			_ = c.Drop()
		}
	})
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			enc := []wire.Encoding{wire.JSON, wire.Proto}[i%2]
			c, err := client.Dial(ctx, h.base, "good", enc)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			opened = append(opened, c)
			mu.Unlock()
			for j := range perConn {
				if err := c.Write(sendFrame(fmt.Sprintf("%d-%d", i, j), "many")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := func() int {
		n := 0
		for _, r := range h.recorders() {
			n += r.frameCount()
		}
		return n
	}
	waitFor(t, "all frames", func() bool { return total() == conns*perConn })
	require.Len(t, h.recorders(), conns)
	require.Equal(t, conns, h.srv.Count())
	seen := map[string]bool{}
	for _, r := range h.recorders() {
		frames, bad, closed, _ := r.snapshot()
		require.Empty(t, bad)
		require.Zero(t, closed)
		require.Len(t, frames, perConn)
		conn, _, _ := strings.Cut(frames[0].GetSend().GetId(), "-")
		require.False(t, seen[conn], "two sockets with frames of conn %s", conn)
		seen[conn] = true
		for j, f := range frames {
			require.Equal(t, fmt.Sprintf("%s-%d", conn, j), f.GetSend().GetId(), "frames out of order")
		}
	}
	require.Len(t, seen, conns)
}

// A socket that sends a message slower than ReadTimeout is dropped without a close
// frame and the handler hears Closed.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.ReadTimeout = 100 * time.Millisecond
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	msg := maskedFrame(true, ws.OpText, sendJSON("slow", "loris"))
	_, err := c.Write(msg[:5])
	require.NoError(t, err)
	r := h.handler(t, 0)
	requireClosedOnce(t, h, r)
	_, err = ws.ReadFrame(c.r)
	require.ErrorIs(t, err, io.EOF, "dropped without a close frame")
	require.Zero(t, r.frameCount())
}

// Frames written while a socket is corked go out together, in order, with one
// write(2) at Uncork; none before it. A Close while corked writes them before the
// close frame.
func TestCorkedFramesGoInOneWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t, defaultConfig(), nil)
	c := h.dialRaw(t, wire.JSON)
	r := h.handler(t, 0)
	sent := func(id string) *parleypb.ServerFrame {
		return &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{Id: id, MessageId: 7}}}
	}
	r.sock.Cork()
	before := gateway.Writes(h.srv)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, r.sock.Write(sent(id)))
	}
	require.Equal(t, before, gateway.Writes(h.srv), "no write(2) while corked")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := c.r.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing reaches the peer while corked")
	require.NoError(t, c.SetDeadline(time.Now().Add(waitTimeout)))

	r.sock.Uncork()
	require.Equal(t, before+1, gateway.Writes(h.srv), "the three frames in one write(2)")
	for _, id := range []string{"a", "b", "c"} {
		f := c.readFrame(t)
		require.Contains(t, string(f.Payload), `"id":"`+id+`"`)
	}

	r.sock.Cork()
	require.NoError(t, r.sock.Write(sent("d")))
	r.sock.Close(int(ws.StatusNormalClosure), "bye") // still corked
	f := c.readFrame(t)
	require.Contains(t, string(f.Payload), `"id":"d"`, "the corked frame goes before the close frame")
	c.expectClose(t, int(ws.StatusNormalClosure))
}
