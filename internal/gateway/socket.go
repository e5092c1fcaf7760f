package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Handler receives what a socket reads (implemented by actors.Session).
type Handler interface {
	Frame(f *parleypb.ClientFrame)
	BadFrame(err error)
	Closed()
	Shutdown()
}

// Socket is one WebSocket connection. Writes (from its connection actor) and the
// reader's control replies share mu; reads happen on one worker at a time (the fd is
// armed one-shot).
type Socket struct {
	srv     *Server
	conn    net.Conn
	fd      int
	tag     int32 // of its poller registration
	enc     wire.Encoding
	frames  bucket // inbound frame rate (read state: under rmu)
	handler Handler

	mu      sync.Mutex // serializes writes
	rmu     sync.Mutex // held while reading: hands the read state from worker to worker
	prefix  []byte     // bytes the HTTP server read past the handshake
	frag    []byte     // a fragmented message being assembled
	fragOp  ws.OpCode
	closing atomic.Bool
}

// errFrameTooBig closes the socket with 1009.
var errFrameTooBig = errors.New("gateway: frame too big")

// Write encodes and writes one frame; an error means the socket is closing.
func (s *Socket) Write(f *parleypb.ServerFrame) error {
	payload, err := wire.EncodeServer(s.enc, f)
	if err != nil {
		return err
	}
	return s.writePayload(payload, wire.ServerTypeOf(f))
}

// WriteMessage writes a message frame with seq, leaving m as it is.
func (s *Socket) WriteMessage(m *parleypb.Message, seq uint64) error {
	payload, err := wire.EncodeMessage(s.enc, m, seq)
	if err != nil {
		return err
	}
	return s.writePayload(payload, "message")
}

func (s *Socket) writePayload(payload []byte, typ string) error {
	op := ws.OpText
	if s.enc == wire.Proto {
		op = ws.OpBinary
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return net.ErrClosed
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	if err := writeFrame(s.conn, ws.NewFrame(op, true, payload)); err != nil {
		go s.Close(CloseNone, "")
		return err
	}
	s.srv.cfg.Metrics.FrameOut(typ)
	return nil
}

var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeFrame writes a frame's header and payload with one write(2), where
// ws.WriteFrame makes two: in a large group's fan-out the syscalls are most of the
// node's work.
func writeFrame(w io.Writer, f ws.Frame) error {
	buf := framePool.Get().(*bytes.Buffer)
	defer framePool.Put(buf)
	buf.Reset()
	buf.Grow(ws.HeaderSize(f.Header) + len(f.Payload))
	if err := ws.WriteHeader(buf, f.Header); err != nil {
		return err
	}
	buf.Write(f.Payload)
	_, err := w.Write(buf.Bytes())
	return err
}

// CloseNone closes without a close frame (the peer is gone).
const CloseNone = 0

// Close sends a close frame with code (unless CloseNone) and closes the socket; the
// handler hears Closed once. Safe to call more than once, from any goroutine.
func (s *Socket) Close(code int, reason string) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.srv.forget(s)
	s.mu.Lock()
	if code == CloseNone {
		_ = s.conn.Close()
	} else {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
		_ = ws.WriteFrame(s.conn, ws.NewCloseFrame(body))
		go linger(s.conn)
	}
	s.mu.Unlock()
	s.handler.Closed()
}

// linger half-closes after the close frame and drains what the client still sends
// (the rest of an oversized frame, its close reply) before closing, so that the
// client reads our close frame instead of a reset.
func linger(conn net.Conn) {
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
	_ = conn.Close()
}

// readable reads what the socket has: one complete message (with the control frames
// before it), or the rest of the bytes buffered at the handshake. It reports
// whether the socket is still open.
func (s *Socket) readable() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if err := s.readMessage(); err != nil {
			s.fail(err)
			return false
		}
		if len(s.prefix) == 0 {
			return true
		}
	}
}

func (s *Socket) fail(err error) {
	var closed wsutil.ClosedError
	switch {
	case errors.Is(err, errFrameTooBig):
		s.Close(wire.CloseTooBig, "frame too big")
	case errors.As(err, &closed):
		code := closed.Code
		if code == ws.StatusNoStatusRcvd || code == 0 {
			code = ws.StatusNormalClosure
		}
		s.Close(int(code), "")
	case errors.Is(err, errRate):
		s.Close(wire.ClosePolicy, "rate limit exceeded")
	case errors.Is(err, errProtocol):
		s.Close(int(ws.StatusProtocolError), err.Error())
	default:
		s.Close(CloseNone, "")
	}
}

var (
	errRate     = errors.New("gateway: rate limit exceeded")
	errProtocol = errors.New("protocol error")
)

func (s *Socket) reader() io.Reader {
	if len(s.prefix) == 0 {
		return s.conn
	}
	return io.MultiReader(&prefixReader{s}, s.conn)
}

type prefixReader struct{ s *Socket }

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.s.prefix) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.s.prefix)
	p.s.prefix = p.s.prefix[n:]
	return n, nil
}

// readMessage reads frames until one data message is complete and hands it on.
func (s *Socket) readMessage() error {
	r := s.reader()
	_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.ReadTimeout))
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return err
		}
		if err := checkHeader(h); err != nil {
			return err
		}
		if h.Length > int64(s.srv.cfg.MaxFrameBytes) || int64(len(s.frag))+h.Length > int64(s.srv.cfg.MaxFrameBytes) {
			return errFrameTooBig
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		ws.Cipher(payload, h.Mask, 0)
		if h.OpCode.IsControl() {
			if !s.allow() { // control frames count against the rate too
				return errRate
			}
			if err := s.control(h, payload); err != nil {
				return err
			}
			continue
		}
		done, op, msg, err := s.assemble(h, payload)
		if err != nil || !done {
			if err != nil {
				return err
			}
			continue
		}
		return s.dispatch(op, msg)
	}
}

// checkHeader applies RFC 6455's rules for client frames: masked, no reserved bits
// (no extension is negotiated), known opcodes, and control frames unfragmented with
// at most 125 bytes.
func checkHeader(h ws.Header) error {
	switch {
	case !h.Masked:
		return fmt.Errorf("%w: unmasked client frame", errProtocol)
	case h.Rsv != 0:
		return fmt.Errorf("%w: reserved bits set", errProtocol)
	case h.OpCode.IsReserved():
		return fmt.Errorf("%w: reserved opcode", errProtocol)
	case h.OpCode.IsControl() && (!h.Fin || h.Length > 125):
		return fmt.Errorf("%w: control frame fragmented or over 125 bytes", errProtocol)
	}
	return nil
}

// assemble joins fragments; done reports a complete message.
func (s *Socket) assemble(h ws.Header, payload []byte) (done bool, op ws.OpCode, msg []byte, err error) {
	switch {
	case h.OpCode == ws.OpContinuation && s.frag == nil:
		return false, 0, nil, fmt.Errorf("%w: continuation without a start", errProtocol)
	case h.OpCode != ws.OpContinuation && s.frag != nil:
		return false, 0, nil, fmt.Errorf("%w: new message inside a fragmented one", errProtocol)
	case h.OpCode != ws.OpContinuation:
		s.fragOp = h.OpCode
	}
	if !h.Fin {
		s.frag = append(s.frag, payload...)
		if s.frag == nil {
			s.frag = []byte{}
		}
		return false, 0, nil, nil
	}
	if s.frag != nil {
		payload = append(s.frag, payload...)
		s.frag = nil
	}
	return true, s.fragOp, payload, nil
}

func (s *Socket) control(h ws.Header, payload []byte) error {
	switch h.OpCode {
	case ws.OpPing:
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		return ws.WriteFrame(s.conn, ws.NewPongFrame(payload))
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil // pong
}

func (s *Socket) allow() bool {
	return s.frames.allow(time.Now(), s.srv.cfg.FrameRate, s.srv.cfg.FrameBurst)
}

func (s *Socket) dispatch(op ws.OpCode, msg []byte) error {
	if !s.allow() {
		return errRate
	}
	want := ws.OpText
	if s.enc == wire.Proto {
		want = ws.OpBinary
	}
	if op != want {
		s.srv.cfg.Metrics.FrameIn("bad")
		s.handler.BadFrame(&wire.FrameError{Code: "bad_request",
			Message: fmt.Sprintf("%s frames are expected with encoding=%s", opName(want), s.enc)})
		return nil
	}
	f, err := wire.DecodeClient(s.enc, msg)
	if err != nil {
		s.srv.cfg.Metrics.FrameIn("bad")
		s.handler.BadFrame(err)
		return nil
	}
	s.srv.cfg.Metrics.FrameIn(wire.TypeOf(f))
	s.handler.Frame(f)
	return nil
}

func opName(op ws.OpCode) string {
	if op == ws.OpBinary {
		return "binary"
	}
	return "text"
}
