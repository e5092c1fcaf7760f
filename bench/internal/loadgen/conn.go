package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// lconn is one client's WebSocket. Its socket is owned by loadgen (sock.go):
// the worker's poller reads it and handles what the server sends (under rmu);
// writes are serialized by wmu, which also guards fd.
type lconn struct {
	w      *worker
	idx    int
	user   string
	fd     int // -1 before the handshake and after close
	wmu    sync.Mutex
	wbuf   []byte // the frame being written
	dialAt time.Duration
	after  *uint64 // the position to sync from; nil = the device's stored cursor

	rmu      sync.Mutex // held while the poller reads and handles this connection
	gotN     int        // messages acknowledged (rmu), for ReadEvery
	detached bool       // reading has ended (rmu)
	inbox    inbox      // input not yet handled (rmu)

	// Channel: follow, when not nil, makes dial follow the channel (closed by the
	// channels answer, which sets listed); lastMsg is the last message id it has
	// and posts the post numbers it got (the poller's, under mu).
	follow     chan struct{}
	followOnce sync.Once
	listed     bool
	lastMsg    uint64
	posts      bitset

	// Sending, set before traffic starts.
	to, group, channel string
	fanout             uint64 // receivers of each message
	tokens             chan struct{}
	window             chan struct{}
	next               uint64

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
	return &lconn{w: w, idx: i, user: w.userName(i), fd: -1, seen: map[string]*bitset{}, synced: make(chan struct{}),
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
	if err := c.attach(nc, br); err != nil {
		return err
	}
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
	if c.follow != nil {
		if err := c.followChannel(ctx); err != nil {
			return err
		}
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

// attach takes the handshaken socket over from nc (and whatever br read past
// the handshake) and registers it with the worker's poller.
func (c *lconn) attach(nc net.Conn, br *bufio.Reader) error {
	var early []byte
	if br != nil {
		early, _ = br.Peek(br.Buffered())
		early = bytes.Clone(early)
		ws.PutReader(br)
	}
	fd, err := adopt(nc)
	if err != nil {
		_ = nc.Close()
		return err
	}
	c.wmu.Lock()
	c.fd = fd
	c.wmu.Unlock()
	if len(early) > 0 {
		c.rmu.Lock()
		err = c.feed(early)
		c.rmu.Unlock()
	}
	if err == nil {
		err = c.w.poll.add(c)
	}
	if err != nil {
		return c.abort(err)
	}
	return nil
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
	return c.writeFrame(op, b)
}

// writeTimeout bounds one frame's write.
const writeTimeout = 10 * time.Second

// writeFrame writes one masked client frame with one write(2).
func (c *lconn) writeFrame(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fd < 0 {
		return errClosed
	}
	c.wbuf = appendClientFrame(c.wbuf[:0], op, payload)
	return WriteAll(c.fd, c.wbuf, time.Now().Add(writeTimeout))
}

// appendClientFrame appends a final frame of op with payload, masked as a
// client's frames must be.
func appendClientFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, byte(0x80|op)) // FIN
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], mask, 0)
	return b
}

type lockedWriter struct{ c *lconn }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.wmu.Lock()
	defer l.c.wmu.Unlock()
	if l.c.fd < 0 {
		return 0, errClosed
	}
	if err := WriteAll(l.c.fd, p, time.Now().Add(writeTimeout)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readEnded (rmu held) stops reading after err: the socket broke, or the
// server closed it.
func (c *lconn) readEnded(err error) {
	c.ended(err)
	c.detachLocked()
}

// detachLocked (rmu held) takes the connection off the poller, once; its fd
// is still open.
func (c *lconn) detachLocked() {
	if c.detached {
		return
	}
	c.detached = true
	if c.fd >= 0 {
		c.w.poll.remove(c)
	}
	close(c.readerDone)
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
	c.rmu.Lock()
	c.detachLocked()
	c.rmu.Unlock()
	c.wmu.Lock()
	if c.fd >= 0 {
		_ = unix.Close(c.fd) // RST: SO_LINGER 0
		c.fd = -1
	}
	c.wmu.Unlock()
}
