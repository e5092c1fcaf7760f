// Package client is a small Go client of Parley: the REST calls to get a session,
// and a WebSocket connection that writes client frames and reads server frames in
// either encoding. Tests and tools use it; a Conn is safe for one reader and
// concurrent writers.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Session is a logged-in device.
type Session struct {
	Token    string `json:"token"`
	UserID   string `json:"userId"`
	DeviceID string `json:"deviceId"`
}

// APIError is an error answer of the REST API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Register creates an account.
func Register(ctx context.Context, base, username, password string) error {
	return post(ctx, base+"/v1/users", map[string]string{"username": username, "password": password}, nil)
}

// Login opens a session; device "" lets the server pick a device id.
func Login(ctx context.Context, base, username, password, device string) (Session, error) {
	var s Session
	body := map[string]string{"username": username, "password": password}
	if device != "" {
		body["device"] = device
	}
	err := post(ctx, base+"/v1/sessions", body, &s)
	return s, err
}

func post(ctx context.Context, u string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return Do(req, out)
}

// Do runs a REST request and decodes a JSON answer into out (if not nil); error
// answers become *APIError.
func Do(req *http.Request, out any) error { return DoWith(http.DefaultClient, req, out) }

// DoWith is Do with the given HTTP client (e.g. one that keeps more idle
// connections per host than http.DefaultClient's two).
func DoWith(hc *http.Client, req *http.Request, out any) error {
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&e)
		return &APIError{Status: res.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// Conn is a WebSocket connection to a node.
type Conn struct {
	conn net.Conn
	src  io.Reader // in, counting conn or a reader holding bytes read past the handshake
	in   counter
	enc  wire.Encoding
	mu   sync.Mutex // writes
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

// DialOptions are Dial's settings beyond the defaults.
type DialOptions struct {
	// NetDial opens the TCP connection (nil: a net.Dialer's), for example with
	// socket options set before the connect.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial opens /v1/ws with a token. A refused upgrade returns ws.ConnectionRejectedError
// (or the handshake error with the HTTP status).
func Dial(ctx context.Context, base, token string, enc wire.Encoding) (*Conn, error) {
	return DialWith(ctx, base, token, enc, DialOptions{})
}

// DialWith is Dial with o.
func DialWith(ctx context.Context, base, token string, enc wire.Encoding, o DialOptions) (*Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/v1/ws"
	q := url.Values{"encoding": {enc.String()}}
	u.RawQuery = q.Encode()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}), NetDial: o.NetDial}
	conn, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, err
	}
	c := &Conn{conn: conn, enc: enc}
	c.in.r = conn
	if br != nil {
		c.in.r = br // it holds bytes the server sent right after the handshake
	}
	c.src = &c.in
	return c, nil
}

// BytesRead is how many bytes the connection has read since the handshake
// (frame headers included).
func (c *Conn) BytesRead() int64 { return c.in.n.Load() }

// Write sends one client frame.
func (c *Conn) Write(f *parleypb.ClientFrame) error {
	b, err := wire.EncodeClient(c.enc, f)
	if err != nil {
		return err
	}
	op := ws.OpText
	if c.enc == wire.Proto {
		op = ws.OpBinary
	}
	return c.WriteRaw(op, b)
}

// WriteRaw sends one data frame with any payload (for tests of bad input).
func (c *Conn) WriteRaw(op ws.OpCode, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientMessage(c.conn, op, payload)
}

// CloseError is the server's close frame.
type CloseError = wsutil.ClosedError

// Read returns the next server frame, waiting at most timeout. The server closing
// the connection returns a CloseError with its code.
func (c *Conn) Read(timeout time.Duration) (*parleypb.ServerFrame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	control := wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateClientSide)
	rd := wsutil.Reader{Source: c.src, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode == ws.OpClose {
			return nil, c.closed(&rd)
		}
		if h.OpCode.IsControl() {
			if err := control(h, &rd); err != nil {
				return nil, err
			}
			continue
		}
		if h.OpCode != ws.OpText && h.OpCode != ws.OpBinary {
			if err := rd.Discard(); err != nil {
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

// closed reads the server's close frame, answers it if the socket still takes
// writes, and returns it as a CloseError.
func (c *Conn) closed(rd io.Reader) error {
	payload, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	code, reason := ws.ParseCloseFrameData(payload)
	c.mu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
	c.mu.Unlock()
	return wsutil.ClosedError{Code: code, Reason: reason}
}

// lockedWriter writes control replies under the write lock.
type lockedWriter struct{ c *Conn }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.c.conn.Write(p)
}

// Close closes the connection with a normal close frame.
func (c *Conn) Close() error {
	c.mu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.mu.Unlock()
	return c.conn.Close()
}

// Drop closes the TCP connection without a close frame (a vanished client).
func (c *Conn) Drop() error { return c.conn.Close() }

// Reset drops the TCP connection with a reset (RST), as a client that lost its
// network does to the server's next write.
func (c *Conn) Reset() error {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.conn.Close()
}

// IsClose reports whether err is a close frame with code.
func IsClose(err error, code int) bool {
	var ce wsutil.ClosedError
	return errors.As(err, &ce) && int(ce.Code) == code
}
