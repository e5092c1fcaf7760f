package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/internal/wire"
)

// maxFramePayload bounds one server message (a history page is the largest).
const maxFramePayload = 16 << 20

// inbox is a connection's input not yet handled: in[start:end] are bytes read
// from the socket, frag a fragmented message being reassembled.
type inbox struct {
	in         []byte
	start, end int
	frag       []byte
	fragOp     ws.OpCode
	frame      inFrame
}

// readable reads what the socket has (one read(2)) and handles every complete
// frame; the poller calls it when epoll reports the socket. Errors end reading.
func (c *lconn) readable() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.detached {
		return
	}
	err := c.fill()
	if err == nil {
		err = c.consume()
	}
	if err != nil {
		c.readEnded(err)
	}
}

// fill makes room and reads once.
func (c *lconn) fill() error {
	b := &c.inbox
	if b.in == nil {
		b.in = make([]byte, c.w.readBuf)
	}
	if b.end == len(b.in) {
		b.compact(b.end - b.start + 1) // moves what is left to the front, or grows
	}
	for {
		n, err := unix.Read(c.fd, b.in[b.end:])
		switch {
		case err == unix.EAGAIN:
			return nil // nothing after all: epoll will say when
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return io.EOF
		}
		b.end += n
		return nil
	}
}

// feed hands p to the connection as if read from its socket (the bytes a
// handshake read past its end; the benchmarks).
func (c *lconn) feed(p []byte) error {
	b := &c.inbox
	b.compact(b.end - b.start + len(p))
	b.end += copy(b.in[b.end:], p)
	return c.consume()
}

// compact moves the unhandled bytes to the front and grows the buffer to hold
// at least need bytes.
func (b *inbox) compact(need int) {
	n := b.end - b.start
	if need > len(b.in) {
		grown := make([]byte, max(need, 2*len(b.in)))
		copy(grown, b.in[b.start:b.end])
		b.in = grown
	} else if b.start > 0 {
		copy(b.in, b.in[b.start:b.end])
	}
	b.start, b.end = 0, n
}

// consume handles every complete frame in the buffer.
func (c *lconn) consume() error {
	b := &c.inbox
	for {
		h, hlen, err := parseHeader(b.in[b.start:b.end])
		if err != nil {
			return err
		}
		if hlen == 0 || int64(b.end-b.start-hlen) < h.Length {
			if hlen > 0 { // the header is in: make room for the whole frame
				b.compact(hlen + int(h.Length))
			} else if b.start == b.end {
				b.start, b.end = 0, 0
			}
			return nil
		}
		payload := b.in[b.start+hlen : b.start+hlen+int(h.Length)]
		b.start += hlen + int(h.Length)
		if h.Masked { // a server does not mask, but a masked frame is still readable
			ws.Cipher(payload, h.Mask, 0)
		}
		if err := c.frameIn(h, payload); err != nil {
			return err
		}
	}
}

// frameIn takes one frame: control frames are answered, fragments gathered,
// and each whole message decoded and handled.
func (c *lconn) frameIn(h ws.Header, payload []byte) error {
	b := &c.inbox
	switch {
	case h.OpCode.IsControl():
		return c.control(h, payload)
	case h.OpCode == ws.OpContinuation:
		if b.fragOp == 0 {
			return errors.New("loadgen: a continuation frame with no message before it")
		}
		b.frag = append(b.frag, payload...)
		if !h.Fin {
			return nil
		}
		payload, b.fragOp = b.frag, 0
		b.frag = b.frag[:0]
	case !h.Fin:
		b.frag, b.fragOp = append(b.frag[:0], payload...), h.OpCode
		return nil
	}
	c.serverMessage(payload)
	return nil
}

// serverMessage decodes and handles one server message.
func (c *lconn) serverMessage(data []byte) {
	w := c.w
	w.framesIn.Add(1)
	f := &c.inbox.frame
	fast, err := decodeFrame(w.enc, data, f)
	if err != nil {
		w.fail("%s: %v", c.user, err)
		return
	}
	if !fast && w.enc == wire.JSON {
		w.slowDecodes.Add(1)
	}
	c.handle(f)
}

// control answers a ping with a pong and a close with a close, as a client
// must (off the poller's goroutine: a write may wait); a close ends reading
// with wsutil.ClosedError.
func (c *lconn) control(h ws.Header, payload []byte) error {
	switch h.OpCode {
	case ws.OpPing:
		p := bytes.Clone(payload)
		go func() { _ = c.writeFrame(ws.OpPong, p) }()
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		p := bytes.Clone(payload[:min(2, len(payload))])
		go func() { _ = c.writeFrame(ws.OpClose, p) }()
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil
}

// parseHeader reads a frame header from the front of b; hlen is 0 while b
// holds only part of it.
func parseHeader(b []byte) (h ws.Header, hlen int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin, h.Rsv, h.OpCode = b[0]&0x80 != 0, (b[0]&0x70)>>4, ws.OpCode(b[0]&0x0f)
	h.Masked = b[1]&0x80 != 0
	hlen = 2
	switch n := b[1] & 0x7f; n {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length, hlen = int64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:10])
		if v > maxFramePayload {
			return h, 0, fmt.Errorf("loadgen: a server frame of %d bytes, over %d", v, maxFramePayload)
		}
		h.Length, hlen = int64(v), 10
	default:
		h.Length = int64(n)
	}
	if h.Masked {
		if len(b) < hlen+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[hlen:hlen+4])
		hlen += 4
	}
	return h, hlen, nil
}
