package wsecho

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// client is one WebSocket client connection to the echo server.
type client struct {
	conn net.Conn
	r    io.Reader // conn, or the dialer's buffered bytes followed by conn
	rhdr []byte    // header scratch of readFrame
	whdr []byte    // header scratch of writeFrame
	wbuf []byte    // one whole masked frame, written with one Write
}

// dial opens a TCP connection from src to addr and does the WebSocket handshake.
func dial(ctx context.Context, addr string, src net.IP) (*client, error) {
	d := ws.Dialer{NetDial: loadgen.Dialer(src), Timeout: handshakeTimeout}
	conn, br, _, err := d.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		return nil, fmt.Errorf("dialing %s from %v: %w", addr, src, err)
	}
	c := &client{conn: conn, r: conn, rhdr: make([]byte, ws.MaxHeaderSize), whdr: make([]byte, ws.MaxHeaderSize)}
	if br != nil { // the server wrote past the handshake response
		c.r = io.MultiReader(br, conn)
	}
	return c, nil
}

// writeFrame writes p as one masked binary frame with a single Write.
func (c *client) writeFrame(p []byte) error {
	mask := ws.NewMask()
	h := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: int64(len(p))}
	w := sliceWriter{b: c.wbuf[:0]}
	if err := ws.WriteHeaderBuffer(&w, h, c.whdr); err != nil {
		return err
	}
	n := len(w.b)
	w.b = append(w.b, p...)
	ws.Cipher(w.b[n:], mask, 0)
	c.wbuf = w.b
	_, err := c.conn.Write(w.b)
	return err
}

// readFrame reads one server frame into buf, which must have room for it, and
// returns the payload. Anything but an unmasked, final binary frame is an error.
func (c *client) readFrame(r io.Reader, buf []byte) ([]byte, error) {
	h, err := ws.ReadHeaderBuffer(r, c.rhdr)
	if err != nil {
		return nil, err
	}
	if h.OpCode != ws.OpBinary || !h.Fin || h.Masked || h.Length > int64(len(buf)) {
		return nil, fmt.Errorf("unexpected frame: op %v fin %v masked %v length %d", h.OpCode, h.Fin, h.Masked, h.Length)
	}
	p := buf[:h.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	return p, nil
}

// ping sends p and checks that the same bytes come back, within timeout.
func (c *client) ping(p []byte, timeout time.Duration) error {
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	defer c.conn.SetDeadline(time.Time{})
	if err := c.writeFrame(p); err != nil {
		return fmt.Errorf("writing the first frame: %w", err)
	}
	got, err := c.readFrame(c.r, make([]byte, len(p)))
	if err != nil {
		return fmt.Errorf("reading the first echo: %w", err)
	}
	if !bytes.Equal(got, p) {
		return fmt.Errorf("the first echo differs from what was sent")
	}
	return nil
}

// close resets the connection (SO_LINGER 0).
func (c *client) close() { _ = c.conn.Close() }

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
