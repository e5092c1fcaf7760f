package soak

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// wsConn is one WebSocket to a node: one reader, writers serialized. It is
// client.Conn with a receive buffer of the caller's choice: a slow reader's
// small buffer makes the server's outbound queue, not the kernel, hold what it
// has not read.
type wsConn struct {
	conn net.Conn
	src  io.Reader // conn, or the handshake's reader holding bytes read past it
	enc  wire.Encoding
	mu   sync.Mutex
	in   counter // bytes read
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n atomic.Int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// closeError is the server's close frame.
type closeError = wsutil.ClosedError

// dialWS opens base's /v1/ws with token; rcvbuf > 0 sets SO_RCVBUF before the
// connect (so that the window it advertises follows it).
func dialWS(ctx context.Context, base, token string, enc wire.Encoding, rcvbuf int) (*wsConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/v1/ws"
	u.RawQuery = url.Values{"encoding": {enc.String()}}.Encode()
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf <= 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		return errors.Join(err, serr)
	}}
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}), NetDial: nd.DialContext}
	conn, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn, enc: enc}
	c.in.r = conn
	if br != nil {
		c.in.r = br
	}
	c.src = &c.in
	return c, nil
}

// write sends one client frame.
func (c *wsConn) write(f *parleypb.ClientFrame) error {
	b, err := wire.EncodeClient(c.enc, f)
	if err != nil {
		return err
	}
	op := ws.OpText
	if c.enc == wire.Proto {
		op = ws.OpBinary
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientMessage(c.conn, op, b)
}

// read returns the next server frame, waiting at most timeout for it. A close
// frame from the server is returned as a closeError.
func (c *wsConn) read(timeout time.Duration) (*parleypb.ServerFrame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	control := wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateClientSide)
	rd := wsutil.Reader{Source: c.src, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode == ws.OpClose {
			payload, err := io.ReadAll(&rd)
			if err != nil {
				return nil, err
			}
			code, reason := ws.ParseCloseFrameData(payload)
			return nil, closeError{Code: code, Reason: reason}
		}
		if h.OpCode.IsControl() {
			if err := control(h, &rd); err != nil {
				return nil, err
			}
			continue
		}
		data, err := io.ReadAll(&rd)
		if err != nil {
			return nil, err
		}
		return wire.DecodeServer(c.enc, data)
	}
}

type lockedWriter struct{ c *wsConn }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	_ = l.c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return l.c.conn.Write(p)
}

// close ends the connection with a normal close frame.
func (c *wsConn) close() {
	c.mu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.mu.Unlock()
	_ = c.conn.Close()
}

// drop resets the connection without a close frame: a client that vanished.
func (c *wsConn) drop() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.conn.Close()
}

// closeCode is err's close code, or 0 when the connection ended without one.
func closeCode(err error) int {
	var ce closeError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return 0
}
