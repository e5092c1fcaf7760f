package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// lconn is one client's WebSocket: a reader goroutine handles what the server
// sends; writes are serialized by wmu.
type lconn struct {
	w      *worker
	idx    int
	user   string
	nc     net.Conn
	src    io.Reader
	wmu    sync.Mutex
	dialAt time.Duration
	after  *uint64 // the position to sync from; nil = the device's stored cursor

	// Sending, set before traffic starts.
	to, group string
	fanout    uint64 // receivers of each message
	tokens    chan struct{}
	window    chan struct{}
	next      uint64

	mu      sync.Mutex
	resends map[string]int     // sends repeated after "unavailable", by id
	seen    map[string]*bitset // this run's message numbers received, by sender
	acked   bitset             // own message numbers answered sent
	track   bool               // storm: note when every message of want has arrived
	want    int
	got     int
	caught  bool

	maxSeq     atomic.Uint64
	synced     chan struct{}
	syncOnce   sync.Once
	closing    atomic.Bool
	dead       atomic.Bool
	up         atomic.Bool // counted in connsUp (clients only, not a storm's senders)
	readerDone chan struct{}
}

// connect dials and syncs the users idx that have a token, DialPar at a time,
// and returns how many are up; prepare, if not nil, sets up each connection
// before it dials.
func (w *worker) connect(ctx context.Context, idx []int, prepare func(c *lconn)) int {
	var todo []int
	for _, i := range idx {
		if w.tokens[i] != "" {
			todo = append(todo, i)
		}
	}
	failed := w.forEach(ctx, todo, w.cfg.DialPar, func(ctx context.Context, i int) error {
		var err error
		for try := range dialTries {
			if try > 0 { // as a client does after a close such as 1011 unavailable
				w.dialRetries.Add(1)
				select {
				case <-time.After(time.Duration(try) * 500 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			c := w.newConn(i)
			if prepare != nil {
				prepare(c)
			}
			if err = c.dial(ctx, w.tokens[i]); err == nil {
				w.conns[i] = c
				return nil
			}
		}
		return fmt.Errorf("connecting %s: %w", w.userName(i), err)
	})
	w.setupErrors.Add(int64(failed))
	return len(todo) - failed
}

// dialTries is how many times a connection is tried before it counts as a setup error.
const dialTries = 3

func (w *worker) newConn(i int) *lconn {
	return &lconn{w: w, idx: i, user: w.userName(i), seen: map[string]*bitset{}, synced: make(chan struct{}),
		readerDone: make(chan struct{})}
}

// dial opens the socket and syncs from c.after. The server sends nothing when a socket opens; its
// connection actor attaches to the user grain while it starts (Proto.Actor runs
// Started before any frame), so the answer to the sync shows the connection is
// registered with its user grain. An attach that fails closes the socket.
func (c *lconn) dial(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w := c.w
	u, err := url.Parse(w.url(c.idx))
	if err != nil {
		return err
	}
	u.Scheme, u.Path = "ws", "/v1/ws"
	u.RawQuery = url.Values{"encoding": {w.enc.String()}}.Encode()
	d := ws.Dialer{
		Header:  ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
		NetDial: Dialer(w.srcs.Next()),
	}
	c.dialAt = time.Since(w.base)
	nc, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return err
	}
	c.nc, c.src = nc, nc
	if br != nil {
		c.src = br
	}
	go c.readLoop()
	if err := c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: c.after}}}); err != nil {
		return c.abort(err)
	}
	select {
	case <-c.synced:
	case <-c.readerDone:
		return c.abort(errors.New("connection ended before synced"))
	case <-ctx.Done():
		return c.abort(fmt.Errorf("waiting for synced: %w", ctx.Err()))
	}
	if c.idx < w.lay.clients {
		c.up.Store(true)
		w.connsUp.Add(1)
	}
	return nil
}

func (c *lconn) abort(err error) error {
	c.close()
	<-c.readerDone
	return err
}

func (c *lconn) write(f *parleypb.ClientFrame) error {
	b, err := wire.EncodeClient(c.w.enc, f)
	if err != nil {
		return err
	}
	op := ws.OpText
	if c.w.enc == wire.Proto {
		op = ws.OpBinary
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientMessage(c.nc, op, b)
}

type lockedWriter struct{ c *lconn }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.wmu.Lock()
	defer l.c.wmu.Unlock()
	return l.c.nc.Write(p)
}

func (c *lconn) readLoop() {
	defer close(c.readerDone)
	control := wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateClientSide)
	rd := wsutil.Reader{Source: c.src, State: ws.StateClientSide, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err == nil && h.OpCode.IsControl() {
			if err = control(h, &rd); err == nil {
				continue
			}
		}
		if err != nil {
			c.ended(err)
			return
		}
		data, err := io.ReadAll(&rd)
		if err != nil {
			continue // the next NextFrame reports the broken socket
		}
		f, err := wire.DecodeServer(c.w.enc, data)
		if err != nil {
			c.w.fail("%s: %v", c.user, err)
			continue
		}
		c.handle(f)
	}
}

// ended counts a socket that broke while it was not being closed.
func (c *lconn) ended(err error) {
	if c.closing.Load() {
		return
	}
	c.dead.Store(true)
	c.w.closes.Add(1)
	if c.up.Swap(false) {
		c.w.connsUp.Add(-1)
	}
	c.w.fail("%s: connection ended: %v", c.user, err)
}

func (c *lconn) now() time.Duration { return time.Since(c.w.base) }

// ackReceived tells the server what this connection has (it moves the device's
// cursor, so that a later run with the same users does not replay it).
func (c *lconn) ackReceived() bool {
	up := c.maxSeq.Load()
	if up == 0 || c.closing.Load() || c.dead.Load() {
		return false
	}
	return c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: up}}}) == nil
}

// closeAll acknowledges what each of the users' connections received, then
// closes them (RST: SO_LINGER 0) and waits for their readers.
func (w *worker) closeAll(idx []int) {
	acked := false
	for _, i := range idx {
		if c := w.conns[i]; c != nil && c.ackReceived() {
			acked = true
		}
	}
	if acked {
		time.Sleep(200 * time.Millisecond) // let the node read them before the resets
	}
	for _, i := range idx {
		if c := w.conns[i]; c != nil {
			c.close()
		}
	}
	for _, i := range idx {
		if c := w.conns[i]; c != nil {
			<-c.readerDone
		}
	}
}

func (c *lconn) close() {
	if c.closing.Swap(true) {
		return
	}
	if c.up.Swap(false) {
		c.w.connsUp.Add(-1)
	}
	if c.nc != nil {
		_ = c.nc.Close()
	}
}
