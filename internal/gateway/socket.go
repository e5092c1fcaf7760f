package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

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
	// Idle says that only heartbeats (pings) arrived for Config.IdleAfter; the next
	// other frame comes to Frame as usual.
	Idle()
}

// Socket is one WebSocket connection.
//
// Reading never waits on the peer: readiness is one-shot, so one worker reads a
// socket at a time (rmu); it takes what the kernel has without blocking, handles
// every complete frame in it, and keeps the bytes of a frame not complete yet for
// the next readiness. A peer that trickles bytes costs its own partial frame and
// nothing else: no worker waits for it. A partial frame still incomplete after
// ReadTimeout from its first byte closes the socket (the server's sweep).
//
// Writing never waits on the peer either: a frame goes to the kernel at once if the
// socket is not behind; what the kernel does not take is queued, bounded by
// OutboundBytes, and written by a flusher goroutine that exists only while the
// socket is behind. A reader that falls further behind is closed with 1013 (what it
// was sent stays in its sync queue).
//
// A writer that has several frames for a socket at once corks it (Cork): frames
// queue until Uncork writes them with one write(2). On loopback a write costs the
// sender the receiver's TCP work too, so the messages of one commit or a sync page
// written with one write cost a fraction of one write each.
type Socket struct {
	srv     *Server
	conn    net.Conn
	raw     syscall.RawConn
	fd      int
	tag     int32 // of its poller registration
	enc     wire.Encoding
	handler Handler

	// Read state, under rmu (held by the one worker reading).
	rmu    sync.Mutex
	in     []byte       // bytes read, not handled yet: the start of a frame; nil when none
	since  atomic.Int64 // Unix ns when in's frame began (0: no partial frame)
	frag   []byte       // a fragmented message being assembled
	fragOp ws.OpCode
	frames bucket       // inbound frame rate: every frame takes a token, each fragment too
	heard  atomic.Int64 // Unix ns when the last bytes arrived (or the socket opened)
	active atomic.Int64 // Unix ns when the last frame other than a ping arrived (or the socket opened)
	idle   atomic.Bool  // the handler heard Idle, and no other frame came since

	// Write state, under mu.
	mu       sync.Mutex
	out      []byte // queued for the flusher
	pending  int    // bytes queued or in the flusher's hands
	flushing bool   // a flusher goroutine writes; new frames queue behind it
	corked   bool   // frames queue in out until Uncork
	closing  atomic.Bool
	goneOnce sync.Once // the handler hears Closed once
	prefix   *[]byte   // bytes the HTTP server read past the handshake (read state; a pointer: most sockets have none)
}

var (
	errFrameTooBig   = errors.New("gateway: frame too big")
	errRate          = errors.New("gateway: rate limit exceeded")
	errProtocol      = errors.New("gateway: protocol error")
	errInvalidUTF8   = errors.New("gateway: invalid UTF-8") // in a text message or a close reason
	errSlowConsumer  = errors.New("gateway: outbound queue full")
	errSocketClosing = net.ErrClosed
)

// Write encodes and queues one frame; an error means the socket is closing.
func (s *Socket) Write(f *parleypb.ServerFrame) error {
	payload, err := wire.EncodeServer(s.enc, f)
	if err != nil {
		return err
	}
	return s.sendData(payload, wire.ServerTypeOf(f))
}

// WriteMessage queues a message frame with seq, leaving m as it is.
func (s *Socket) WriteMessage(m *parleypb.Message, seq uint64) error {
	payload, err := wire.EncodeMessage(s.enc, m, seq)
	if err != nil {
		return err
	}
	return s.sendData(payload, "message")
}

// WriteFeed queues a feed's frames (made once for every socket of this encoding).
func (s *Socket) WriteFeed(f *wire.Feed) error {
	frame := appendTextFrame
	if s.enc == wire.Proto {
		frame = appendBinaryFrame
	}
	err := s.send(f.Frames(s.enc, frame))
	if err == nil {
		s.srv.cfg.Metrics.FramesOut("message", f.Len())
	}
	return err
}

func (s *Socket) sendData(payload []byte, typ string) error {
	op := ws.OpText
	if s.enc == wire.Proto {
		op = ws.OpBinary
	}
	buf := compileFrame(op, payload)
	err := s.send(buf.b)
	buf.free()
	if err == nil {
		s.srv.cfg.Metrics.FrameOut(typ)
	}
	return err
}

// send writes one compiled frame, or queues it behind what is queued already.
func (s *Socket) send(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return errSocketClosing
	}
	return s.sendLocked(frame)
}

func (s *Socket) sendLocked(frame []byte) error {
	if !s.flushing && !s.corked {
		n, err := s.writeNow(frame)
		if err != nil {
			go s.Close(CloseNone, "")
			return err
		}
		frame = frame[n:]
		if len(frame) == 0 {
			return nil
		}
		s.flushing = true
		go s.flush()
	}
	if s.pending+len(frame) > s.srv.cfg.OutboundBytes {
		go s.overflow()
		return errSlowConsumer
	}
	if s.out == nil {
		s.out = (*corkPool.Get().(*[]byte))[:0]
	}
	s.out = append(s.out, frame...)
	s.pending += len(frame)
	return nil
}

// corkPool holds the buffers of corked sockets between uses: a socket holds one
// only while it has frames queued.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooled bounds the buffers kept in corkPool.
const maxPooled = 64 << 10

// Cork makes the frames written until Uncork queue, to go to the kernel together.
func (s *Socket) Cork() {
	s.mu.Lock()
	s.corked = true
	s.mu.Unlock()
}

// Uncork writes what was queued while corked, with one write(2) when the kernel
// takes it all (what it does not take goes to the flusher, as for any frame).
func (s *Socket) Uncork() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uncorkLocked()
}

func (s *Socket) uncorkLocked() {
	if !s.corked {
		return
	}
	s.corked = false
	if s.flushing || len(s.out) == 0 {
		return
	}
	n, err := s.writeNow(s.out)
	if err != nil {
		s.out, s.pending = nil, 0
		go s.Close(CloseNone, "")
		return
	}
	if n == len(s.out) {
		if cap(s.out) <= maxPooled {
			b := s.out[:0]
			corkPool.Put(&b)
		}
		s.out, s.pending = nil, 0
		return
	}
	s.out = s.out[n:]
	s.pending -= n
	s.flushing = true
	go s.flush()
}

// writeNow writes what the kernel takes without waiting; EAGAIN is 0 bytes.
func (s *Socket) writeNow(b []byte) (int, error) {
	var n int
	var werr error
	err := s.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true
			}
		}
	})
	s.srv.writes.Add(1)
	switch {
	case err != nil:
		return 0, err
	case errors.Is(werr, syscall.EAGAIN):
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// flush writes what is queued, waiting for the kernel (in Go's poller, with
// WriteTimeout per write), until nothing is left; then the socket writes at once
// again. It ends the socket when a write fails.
func (s *Socket) flush() {
	for {
		s.mu.Lock()
		data := s.out
		s.out = nil
		if len(data) == 0 {
			s.flushing = false
			s.pending = 0
			closing := s.closing.Load()
			s.mu.Unlock()
			if closing { // the close frame was the last thing queued
				s.finishClose()
			}
			return
		}
		s.mu.Unlock()
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		_, err := s.conn.Write(data)
		_ = s.conn.SetWriteDeadline(time.Time{})
		s.mu.Lock()
		s.pending -= len(data)
		s.mu.Unlock()
		if err != nil {
			s.mu.Lock()
			s.flushing = false
			s.out, s.pending = nil, 0
			s.mu.Unlock()
			s.abort()
			return
		}
	}
}

// CloseNone closes without a close frame (the peer is gone).
const CloseNone = 0

// CloseNoHeartbeat is the code of a socket closed because nothing arrived on it for
// Config.DeadAfter: the peer is gone, as far as the server can tell.
const CloseNoHeartbeat = wire.CloseGoingAway

// LastHeard is when bytes last arrived on the socket (when it opened, if none did):
// when a socket closed for silence went quiet.
func (s *Socket) LastHeard() time.Time { return time.Unix(0, s.heard.Load()) }

// Close sends a close frame with code (unless CloseNone), after the frames queued
// before it, and closes the socket; the handler hears Closed once. Safe to call more
// than once, from any goroutine.
func (s *Socket) Close(code int, reason string) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.srv.forget(s)
	if code == CloseNone {
		s.abort()
		return
	}
	body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
	buf := compileFrame(ws.OpClose, body)
	defer buf.free()
	s.mu.Lock()
	s.uncorkLocked() // the frames queued go before the close frame
	err := s.sendLocked(buf.b)
	behind := s.flushing
	s.mu.Unlock()
	switch {
	case err != nil:
		s.abort()
	case !behind:
		s.finishClose()
	} // else the flusher finishes the close after the close frame
}

// finishClose ends a socket whose close frame is written: the peer gets time to read
// it (linger), and the handler hears Closed.
func (s *Socket) finishClose() {
	go linger(s.conn)
	s.gone()
}

// abort closes the connection at once, dropping what is queued.
func (s *Socket) abort() {
	s.closing.Store(true)
	s.srv.forget(s)
	_ = s.conn.Close()
	s.gone()
}

// gone tells the handler, once.
func (s *Socket) gone() { s.goneOnce.Do(s.handler.Closed) }

// overflow ends a socket whose reader fell behind past OutboundBytes: what is
// queued is dropped, the close frame (1013, try again later) takes its place behind
// what the kernel holds already, and the handler hears Closed now. The flusher
// writes the close frame if the reader ever reads again within WriteTimeout, then
// closes; otherwise the write times out and the connection is cut.
func (s *Socket) overflow() {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.srv.forget(s)
	body := ws.NewCloseFrameBody(wire.CloseTryAgain, "outbound queue full; reconnect and sync")
	buf := compileFrame(ws.OpClose, body)
	s.mu.Lock()
	s.out = append(s.out[:0], buf.b...)
	s.pending = len(s.out)
	behind := s.flushing
	s.mu.Unlock()
	buf.free()
	if !behind {
		_ = s.conn.Close()
	}
	s.gone()
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

// scratch buffers for reads: a socket holds read bytes only while a frame is
// incomplete.
const scratchBytes = 32 << 10

var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchBytes); return &b }}

// readable handles what the socket has: the bytes buffered at the handshake, then
// what the kernel has now. It reports whether the socket is still open.
func (s *Socket) readable() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.prefix != nil {
		data := *s.prefix
		s.prefix = nil
		if !s.handle(data) {
			return false
		}
	}
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	for {
		n, err := s.readNow(buf)
		if err != nil {
			s.fail(err)
			return false
		}
		if n > 0 {
			s.heard.Store(time.Now().UnixNano())
			if !s.handle(buf[:n]) {
				return false
			}
		}
		if n < len(buf) { // drained (readiness is level-triggered: more data re-fires)
			return true
		}
	}
}

// readNow reads what the kernel has without waiting: 0 bytes when it has nothing,
// io.EOF when the peer closed.
func (s *Socket) readNow(b []byte) (int, error) {
	var n int
	var rerr error
	err := s.raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), b)
			if rerr != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, syscall.EAGAIN):
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// handle parses data after what was kept from earlier reads, handles each complete
// frame, and keeps the start of an incomplete one. It reports whether the socket is
// still open.
func (s *Socket) handle(data []byte) bool {
	began, err := s.consume(data)
	if err != nil {
		s.fail(err)
		return false
	}
	switch {
	case len(s.in) == 0:
		if s.since.Swap(0) != 0 {
			s.srv.untrack(s)
		}
	case began || s.since.Load() == 0: // a new frame began in this read
		if s.since.Swap(time.Now().UnixNano()) == 0 {
			s.srv.track(s)
		}
	}
	return !s.closing.Load()
}

// consume is handle's parsing: it handles the complete frames in what was kept and
// data, and keeps the rest in s.in, the start of one frame (fewer than
// MaxFrameBytes+14 bytes: a header of up to 14 bytes, and less than its payload).
// began reports that a frame was complete, so that the kept one began in data.
func (s *Socket) consume(data []byte) (began bool, err error) {
	if len(s.in) > 0 {
		s.in = append(s.in, data...)
		data = s.in
	}
	rest, began, err := s.parse(data)
	switch {
	case err != nil || len(rest) == 0:
		s.in = nil
	case len(s.in) == 0 || &rest[0] != &s.in[0]:
		s.in = append(make([]byte, 0, len(rest)), rest...)
	}
	return began, err
}

// parse handles the complete frames at the start of data and returns the rest (the
// start of a frame), and whether a frame was complete (so the rest began now).
func (s *Socket) parse(data []byte) (rest []byte, began bool, err error) {
	for {
		h, n, ok, err := parseHeader(data)
		if err != nil || !ok {
			return data, began, err
		}
		if err := checkHeader(h); err != nil {
			return nil, began, err
		}
		limit := int64(s.srv.cfg.MaxFrameBytes) // for a message: a control frame between its fragments is no part of it
		if h.Length > limit || !h.OpCode.IsControl() && int64(len(s.frag))+h.Length > limit {
			return nil, began, errFrameTooBig
		}
		if int64(len(data)-n) < h.Length {
			return data, began, nil
		}
		payload := data[n : n+int(h.Length)]
		data = data[n+int(h.Length):]
		began = true
		ws.Cipher(payload, h.Mask, 0)
		if err := s.frame(h, payload); err != nil {
			return nil, began, err
		}
		if s.closing.Load() {
			return nil, began, nil
		}
	}
}

// frame handles one complete frame. Every frame counts against the rate: each
// fragment of a message (an empty continuation costs a parse like any frame) and
// each control frame.
func (s *Socket) frame(h ws.Header, payload []byte) error {
	if !s.allow() {
		return errRate
	}
	if h.OpCode.IsControl() {
		return s.control(h, payload)
	}
	done, op, msg, err := s.assemble(h, payload)
	if err != nil || !done {
		return err
	}
	return s.dispatch(op, msg)
}

// parseHeader reads a frame header (RFC 6455 §5.2) from the start of b: ok false
// means b does not hold all of it yet.
func parseHeader(b []byte) (h ws.Header, n int, ok bool, err error) {
	if len(b) < 2 {
		return h, 0, false, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, false, nil
		}
		h.Length = int64(uint16(b[2])<<8 | uint16(b[3]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, false, nil
		}
		var u uint64
		for _, c := range b[2:10] {
			u = u<<8 | uint64(c)
		}
		if u>>63 != 0 {
			return h, 0, false, fmt.Errorf("%w: the most significant bit of a 64-bit length is set", errProtocol)
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, false, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, true, nil
}

func (s *Socket) fail(err error) {
	var closed wsutil.ClosedError
	switch {
	case errors.Is(err, errFrameTooBig):
		s.Close(wire.CloseTooBig, "frame too big")
	case errors.As(err, &closed): // a valid close frame: its code is echoed (RFC 6455 §5.5.1)
		code := closed.Code
		if code == ws.StatusNoStatusRcvd {
			code = ws.StatusNormalClosure
		}
		s.Close(int(code), "")
	case errors.Is(err, errRate):
		s.Close(wire.ClosePolicy, "rate limit exceeded")
	case errors.Is(err, errProtocol):
		s.Close(wire.CloseProtocolError, err.Error())
	case errors.Is(err, errInvalidUTF8):
		s.Close(wire.CloseInvalidData, err.Error())
	default:
		s.Close(CloseNone, "")
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
		buf := compileFrame(ws.OpPong, payload)
		defer buf.free()
		if err := s.send(buf.b); err != nil && !errors.Is(err, errSocketClosing) {
			return err
		}
	case ws.OpClose:
		return peerClose(payload)
	}
	return nil // pong
}

// peerClose checks the body of the peer's close frame (RFC 6455 §5.5.1, §7.4):
// empty, or a code an endpoint may send and a UTF-8 reason. A valid one is a
// wsutil.ClosedError (code 1005 for an empty body).
func peerClose(body []byte) error {
	switch len(body) {
	case 0:
		return wsutil.ClosedError{Code: ws.StatusNoStatusRcvd}
	case 1:
		return fmt.Errorf("%w: close frame with a 1-byte body", errProtocol)
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(body))
	if !peerCloseCode(code) {
		return fmt.Errorf("%w: close code %d", errProtocol, code)
	}
	if !utf8.Valid(body[2:]) {
		return fmt.Errorf("%w: close reason", errInvalidUTF8)
	}
	return wsutil.ClosedError{Code: code}
}

// peerCloseCode reports whether a peer may send code: RFC 6455's codes but 1004-1006
// and 1015, the ones IANA registered since (1012-1014), and the ranges for
// libraries and applications (3000-4999).
func peerCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}

func (s *Socket) allow() bool {
	return s.frames.allow(time.Now(), s.srv.cfg.FrameRate, s.srv.cfg.FrameBurst)
}

func (s *Socket) dispatch(op ws.OpCode, msg []byte) error {
	if op == ws.OpText && !utf8.Valid(msg) { // RFC 6455 §8.1, whatever the encoding
		return fmt.Errorf("%w: in a text message", errInvalidUTF8)
	}
	want := ws.OpText
	if s.enc == wire.Proto {
		want = ws.OpBinary
	}
	if op != want {
		s.srv.cfg.Metrics.FrameIn("bad")
		s.handler.BadFrame(&wire.FrameError{Code: wire.CodeBadRequest,
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
	if _, ping := f.Body.(*parleypb.ClientFrame_Ping); !ping {
		s.active.Store(time.Now().UnixNano())
		s.idle.Store(false)
	}
	s.handler.Frame(f)
	return nil
}

func opName(op ws.OpCode) string {
	if op == ws.OpBinary {
		return "binary"
	}
	return "text"
}
