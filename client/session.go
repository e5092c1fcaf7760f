package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Client is a long-lived, self-healing connection of one device to a Parley
// cluster: it logs in, keeps one WebSocket open to one of the nodes (moving to the
// next node, round robin, whenever the connection drops), replays what it missed
// with sync, hands every delivered message to OnMessage once and in seq order, and
// retries sends with the same client id until they are committed.
//
// All methods are safe for concurrent use. A Client runs three goroutines of its
// own (the connection supervisor, the reader of the current WebSocket and the
// dispatcher that calls OnMessage); Close stops them all.
type Client struct {
	opts   Options
	log    *slog.Logger
	http   *http.Client
	prefix string        // random prefix of the client ids Send assigns
	ids    atomic.Uint64 // counter of the client ids Send assigns

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
	ready     chan struct{} // closed when the first connection went live
	readyOnce sync.Once
	failed    chan struct{} // closed when the client gave up (fatalErr set)
	fatalErr  error

	mu       sync.Mutex
	token    string
	userID   string
	deviceID string
	conn     *connection   // the current connection; nil while reconnecting
	connGen  chan struct{} // closed (and replaced) whenever a new connection is set
	waiters  map[string][]*pending
	lastErr  error // the last connection failure, for Connect's error

	// Delivery: the reader queues messages, the dispatcher hands them out.
	qmu    sync.Mutex
	queue  []item
	qready chan struct{} // cap 1: the queue has items
	ackReq chan struct{} // cap 1: the dispatcher moved the cursor

	cursor      atomic.Uint64 // last seq handled by OnMessage (or skipped as a repeat)
	cursorKnown atomic.Bool   // false until Options.Cursor or the first synced
	dedupe      *idSet        // used by the dispatcher only
}

// Options configure a Client. Nodes, Username and Password are required.
type Options struct {
	// Nodes are the base URLs of the cluster's nodes (http://host:port). The client
	// connects to Nodes[0] first, and moves to the next one after each failure.
	Nodes    []string
	Username string
	Password string
	// Device is the device id to log in as; "" lets the server pick one at the
	// first login. Later logins of this Client reuse the same device id either way.
	Device string
	// Encoding of the WebSocket frames (wire.JSON by default).
	Encoding wire.Encoding
	// Cursor, when set, is the last seq this device has already handled (kept by
	// the application across runs): the first sync asks for what comes after it.
	// When nil, the first sync uses the device's cursor stored by the server.
	Cursor *uint64
	// OnMessage is called for every delivered message, once (deduplicated) and in
	// seq order, on one goroutine. It sees the user's own messages too (the sender's
	// sync-queue copy). The cursor moves past a message when OnMessage returns, and
	// the server is told with a received frame. OnMessage may call Send, but must
	// not call Close (Close waits for it).
	OnMessage func(Message)
	// Backoff between reconnection attempts and send retries.
	Backoff Backoff
	// Logger for connection events (default: discard).
	Logger *slog.Logger
	// DedupeWindow is how many recent message ids are remembered to drop repeats
	// that come with a new seq (default 10000). Repeats with a seq at or below the
	// cursor are dropped whatever the window.
	DedupeWindow int
	// AckEvery sends a received frame at least every AckEvery handled messages;
	// one is also sent whenever the dispatcher has caught up (default 100).
	AckEvery int
	// PingInterval between ping frames (default 15s); ReadTimeout is how long the
	// connection may stay silent before it is dropped (default 3×PingInterval).
	PingInterval time.Duration
	ReadTimeout  time.Duration
	// ConnectTimeout bounds one login plus WebSocket handshake (default 10s).
	ConnectTimeout time.Duration
	// ResyncInterval: a live connection on which no message frame arrived for this
	// long sends sync from its position, a safety net for live pushes the server
	// stopped sending (see TestFailover). Default 30s; negative disables it.
	ResyncInterval time.Duration
}

// Backoff is an exponential backoff: Initial, doubled per attempt up to Max, then
// spread by ±Jitter (a fraction, 0..1).
type Backoff struct {
	Initial time.Duration // default 50ms
	Max     time.Duration // default 2s
	Jitter  float64       // default 0.2
}

// Delay returns the wait before attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d = time.Duration(float64(d) * (1 - b.Jitter + 2*b.Jitter*mrand.Float64()))
	}
	return d
}

// Message is a delivered chat message.
type Message struct {
	Seq          uint64 // position in this user's sync queue
	ID           int64  // the server's message id
	Conversation string
	From         string
	To           string // direct messages
	Group        string // group messages
	Text         string
	TS           int64  // Unix ms
	ClientID     string // the sender's client message id
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client: closed")

// SendError is an error frame that answered a send and will not go away by
// sending again (bad_request, not_found, too_large, ...).
type SendError struct {
	ID      string // the client message id
	Code    string
	Message string
}

func (e *SendError) Error() string {
	return fmt.Sprintf("send %q: %s: %s", e.ID, e.Code, e.Message)
}

// New checks the options and returns a Client. It does not connect yet: Connect
// does (and Send, if called first).
func New(opts Options) (*Client, error) {
	switch {
	case len(opts.Nodes) == 0:
		return nil, errors.New("client: Options.Nodes is empty")
	case opts.Username == "" || opts.Password == "":
		return nil, errors.New("client: Options.Username and Options.Password are required")
	case opts.Encoding != wire.JSON && opts.Encoding != wire.Proto:
		return nil, fmt.Errorf("client: unknown encoding %v", opts.Encoding)
	}
	opts.Nodes = append([]string(nil), opts.Nodes...)
	if opts.Backoff.Initial <= 0 {
		opts.Backoff.Initial = 50 * time.Millisecond
	}
	if opts.Backoff.Max <= 0 {
		opts.Backoff.Max = 2 * time.Second
	}
	opts.Backoff.Max = max(opts.Backoff.Max, opts.Backoff.Initial)
	if opts.Backoff.Jitter == 0 {
		opts.Backoff.Jitter = 0.2
	}
	opts.Backoff.Jitter = min(max(opts.Backoff.Jitter, 0), 1)
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = 10000
	}
	if opts.AckEvery <= 0 {
		opts.AckEvery = 100
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 15 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 3 * opts.PingInterval
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:     opts,
		log:      log.With(slog.String("user", opts.Username)),
		http:     &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		prefix:   hex.EncodeToString(b[:]),
		ctx:      ctx,
		cancel:   cancel,
		ready:    make(chan struct{}),
		failed:   make(chan struct{}),
		deviceID: opts.Device,
		connGen:  make(chan struct{}),
		waiters:  map[string][]*pending{},
		qready:   make(chan struct{}, 1),
		ackReq:   make(chan struct{}, 1),
		dedupe:   newIDSet(opts.DedupeWindow),
	}
	if opts.Cursor != nil {
		c.cursor.Store(*opts.Cursor)
		c.cursorKnown.Store(true)
	}
	return c, nil
}

// Connect starts the client and waits until its first connection has caught up
// (a sync answered more=false), ctx ends, or the login is refused for good.
// After it returns, the client keeps reconnecting by itself until Close, even
// when Connect gave up waiting.
func (c *Client) Connect(ctx context.Context) error {
	c.start()
	select {
	case <-c.ready:
		return nil
	case <-c.failed:
		return c.fatalErr
	case <-c.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("%w (last connection error: %v)", ctx.Err(), last)
		}
		return ctx.Err()
	}
}

// Close stops the client: it acknowledges what was handled, closes the WebSocket
// and waits for its goroutines. Sends still waiting return ErrClosed. Messages
// received but not handed to OnMessage yet are dropped (they are after the cursor,
// so a later sync from it gets them again).
func (c *Client) Close() error {
	c.closeOnce.Do(c.cancel)
	c.wg.Wait()
	c.http.CloseIdleConnections()
	return nil
}

// Err is the error that made the client give up (a refused login), or nil.
func (c *Client) Err() error {
	select {
	case <-c.failed:
		return c.fatalErr
	default:
		return nil
	}
}

// Cursor returns the last seq handled, and whether it is known yet.
func (c *Client) Cursor() (uint64, bool) { return c.cursor.Load(), c.cursorKnown.Load() }

// DeviceID returns the device id of the session ("" before the first login when
// Options.Device was empty).
func (c *Client) DeviceID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deviceID
}

// UserID returns the user id of the session (Options.Username before the first
// login).
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.userID != "" {
		return c.userID
	}
	return c.opts.Username
}

// Node returns the base URL of the node the client is connected to, or "".
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ""
	}
	return c.conn.node
}

func (c *Client) start() {
	c.startOnce.Do(func() {
		if c.ctx.Err() != nil {
			return
		}
		c.wg.Add(2)
		go c.run()
		go c.dispatch()
	})
}

func (c *Client) fail(err error) {
	c.fatalErr = err
	close(c.failed)
}

// sleep waits d or until Close; it reports whether the client is still open.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// ---- connection supervisor ----

// connection is one WebSocket of the client.
type connection struct {
	conn   *Conn
	node   string
	done   chan struct{} // closed when the reader has returned
	err    error         // why reading ended; set before done is closed
	live   chan struct{} // closed at the first synced with more=false
	resync chan struct{} // cap 1: the reader asks for a sync after a backoff

	frames atomic.Uint64 // message frames read, for the quiet-connection resync

	mu       sync.Mutex
	pos      uint64 // highest seq this connection has sent us (or the last synced upTo)
	acked    uint64 // highest received upTo written on this connection
	liveOnce sync.Once
}

func (cs *connection) markLive() { cs.liveOnce.Do(func() { close(cs.live) }) }

// run connects, serves the connection until it drops, and connects again to the
// next node, with backoff, until Close.
func (c *Client) run() {
	defer c.wg.Done()
	attempt, next := 0, 0
	for c.ctx.Err() == nil {
		node := c.opts.Nodes[next%len(c.opts.Nodes)]
		next++
		cs, err := c.connect(node)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			var ae *APIError
			if errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
				c.log.Error("login refused; giving up", slog.String("node", node), slog.Any("error", err))
				c.fail(fmt.Errorf("client: login refused: %w", err))
				return
			}
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			d := c.opts.Backoff.Delay(attempt)
			c.log.Warn("connecting failed", slog.String("node", node), slog.Any("error", err), slog.Duration("retry_in", d))
			attempt++
			if !c.sleep(d) {
				return
			}
			continue
		}
		c.log.Info("connected", slog.String("node", node))
		c.serve(cs)
		c.mu.Lock()
		c.conn = nil
		c.lastErr = cs.err
		c.mu.Unlock()
		select {
		case <-cs.live:
			attempt = 0 // it worked for a while: start the backoff over
		default:
		}
		if c.ctx.Err() != nil {
			return
		}
		d := c.opts.Backoff.Delay(attempt)
		c.log.Warn("connection lost", slog.String("node", node), slog.Any("error", cs.err), slog.Duration("retry_in", d))
		attempt++
		if !c.sleep(d) {
			return
		}
	}
}

// connect logs in if needed, opens the WebSocket, starts its reader and sends the
// first sync. A token the node rejects is replaced by a new login.
func (c *Client) connect(node string) (*connection, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.ConnectTimeout)
	defer cancel()
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	fresh := false
	if token == "" {
		var err error
		if token, err = c.login(ctx, node); err != nil {
			return nil, err
		}
		fresh = true
	}
	conn, err := Dial(ctx, node, token, c.opts.Encoding)
	var se ws.StatusError
	if errors.As(err, &se) && int(se) == http.StatusUnauthorized && !fresh {
		c.log.Info("token rejected; logging in again", slog.String("node", node))
		if token, err = c.login(ctx, node); err != nil {
			return nil, err
		}
		conn, err = Dial(ctx, node, token, c.opts.Encoding)
	}
	if err != nil {
		if errors.As(err, &se) && int(se) == http.StatusUnauthorized {
			c.mu.Lock()
			c.token = "" // log in again next time
			c.mu.Unlock()
		}
		return nil, fmt.Errorf("dialing %s: %w", node, err)
	}
	cs := &connection{conn: conn, node: node, done: make(chan struct{}), live: make(chan struct{}), resync: make(chan struct{}, 1)}
	// The first sync starts after the client's cursor; without one, after the
	// device's stored cursor.
	sync := &parleypb.Sync{}
	if c.cursorKnown.Load() {
		after := c.cursor.Load()
		sync.After = &after
		cs.pos = after
	}
	c.wg.Add(1)
	go c.read(cs)
	if err := conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: sync}}); err != nil {
		_ = conn.Drop()
		<-cs.done
		return nil, fmt.Errorf("writing sync to %s: %w", node, err)
	}

	// Make it current: Sends waiting for a connection (or whose connection died)
	// send again on this one.
	c.mu.Lock()
	c.conn = cs
	close(c.connGen)
	c.connGen = make(chan struct{})
	c.mu.Unlock()
	return cs, nil
}

// login opens a session on node, keeping the device id of the first login.
func (c *Client) login(ctx context.Context, node string) (string, error) {
	c.mu.Lock()
	device := c.deviceID
	c.mu.Unlock()
	body := map[string]string{"username": c.opts.Username, "password": c.opts.Password}
	if device != "" {
		body["device"] = device
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, node+"/v1/sessions", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	var s Session
	if err := c.do(req, &s); err != nil {
		return "", fmt.Errorf("logging in on %s: %w", node, err)
	}
	c.mu.Lock()
	c.token, c.userID, c.deviceID = s.Token, s.UserID, s.DeviceID
	c.mu.Unlock()
	return s.Token, nil
}

// do is Do with the client's own HTTP client (whose idle connections Close ends).
func (c *Client) do(req *http.Request, out any) error { return do(c.http, req, out) }

// serve runs beside the reader of cs until the connection ends or the client
// closes: heartbeats, acknowledgements and delayed re-syncs.
func (c *Client) serve(cs *connection) {
	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	var resync *time.Timer
	var resyncC <-chan time.Time
	defer func() {
		if resync != nil {
			resync.Stop()
		}
	}()
	resyncs := 0
	live := cs.live
	var quiet <-chan time.Time // ticks while live, when ResyncInterval > 0
	var lastFrames uint64
	write := func(f *parleypb.ClientFrame) {
		if err := cs.conn.Write(f); err != nil {
			_ = cs.conn.Drop() // the reader returns and serve with it
		}
	}
	for {
		select {
		case <-cs.done:
			return
		case <-c.ctx.Done():
			c.ack(cs, write)
			_ = cs.conn.Close()
			<-cs.done
			return
		case <-live:
			live = nil
			resyncs = 0
			if c.opts.ResyncInterval > 0 {
				t := time.NewTicker(c.opts.ResyncInterval)
				defer t.Stop()
				quiet = t.C
				lastFrames = cs.frames.Load()
			}
			c.readyOnce.Do(func() { close(c.ready) })
			c.ack(cs, write)
		case <-ping.C:
			write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}})
		case <-c.ackReq:
			c.ack(cs, write)
		case <-cs.resync:
			if resyncC == nil {
				d := c.opts.Backoff.Delay(resyncs)
				resyncs++
				resync = time.NewTimer(d)
				resyncC = resync.C
			}
		case <-quiet:
			// Nothing arrived for a whole interval: ask, in case the server stopped
			// pushing (an answer with nothing new costs one frame).
			if n := cs.frames.Load(); n != lastFrames || resyncC != nil {
				lastFrames = n
				continue
			}
			cs.mu.Lock()
			after := cs.pos
			cs.mu.Unlock()
			write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
		case <-resyncC:
			resyncC = nil
			cs.mu.Lock()
			after := cs.pos
			cs.mu.Unlock()
			write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
		}
	}
}

// ack tells the server the cursor, when it moved since the last ack on cs.
func (c *Client) ack(cs *connection, write func(*parleypb.ClientFrame)) {
	upTo := c.cursor.Load()
	cs.mu.Lock()
	if upTo <= cs.acked || !c.cursorKnown.Load() {
		cs.mu.Unlock()
		return
	}
	cs.acked = upTo
	cs.mu.Unlock()
	write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: upTo}}})
}

// read is the only reader of cs: it routes each server frame until the socket fails.
func (c *Client) read(cs *connection) {
	defer c.wg.Done()
	defer close(cs.done)
	for {
		f, err := cs.conn.Read(c.opts.ReadTimeout)
		if err != nil {
			cs.err = err
			_ = cs.conn.Drop()
			return
		}
		c.handle(cs, f)
	}
}

func (c *Client) handle(cs *connection, f *parleypb.ServerFrame) {
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Message:
		m := b.Message
		cs.frames.Add(1)
		cs.mu.Lock()
		repeat := m.Seq <= cs.pos
		if !repeat {
			cs.pos = m.Seq
		}
		cs.mu.Unlock()
		if !repeat {
			c.push(item{msg: Message{Seq: m.Seq, ID: m.MessageId, Conversation: m.Conversation, From: m.From,
				To: m.To, Group: m.Group, Text: m.Text, TS: m.Ts, ClientID: m.ClientId}})
		}
	case *parleypb.ServerFrame_Synced:
		s := b.Synced
		cs.mu.Lock()
		if s.More {
			cs.pos = max(cs.pos, s.UpTo)
		} else {
			cs.pos = s.UpTo // the end of the queue, even below a made-up after
		}
		after := cs.pos
		cs.mu.Unlock()
		c.push(item{synced: true, upTo: s.UpTo, more: s.More})
		if s.More {
			if err := cs.conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}}); err != nil {
				_ = cs.conn.Drop()
			}
			return
		}
		cs.markLive()
	case *parleypb.ServerFrame_Sent:
		c.resolve(b.Sent.Id, b.Sent.Conversation, outcome{messageID: b.Sent.MessageId})
	case *parleypb.ServerFrame_Error:
		e := b.Error
		if e.Id != "" && c.resolve(e.Id, "", outcome{err: e}) {
			return
		}
		if e.Id == "" && e.Code == "unavailable" {
			// A sync failed, or live delivery was interrupted: sync again from
			// where this connection is, after a backoff.
			c.log.Info("server asks for a new sync", slog.String("node", cs.node), slog.String("message", e.Message))
			select {
			case cs.resync <- struct{}{}:
			default:
			}
			return
		}
		c.log.Warn("error frame", slog.String("node", cs.node), slog.String("id", e.Id),
			slog.String("code", e.Code), slog.String("message", e.Message))
	}
}

// ---- sends ----

type outcome struct {
	messageID int64
	err       *parleypb.Error // an error frame
}

// pending is one waiting SendID call.
type pending struct {
	conv  string
	done  chan struct{} // closed with res set: sent, or a final error
	retry chan struct{} // cap 1: answered unavailable, send again
	res   outcome
	once  sync.Once
}

// resolve hands a sent (conv set) or an error frame (conv "") to the waiters of
// the client id; it reports whether there were any.
func (c *Client) resolve(id, conv string, o outcome) bool {
	c.mu.Lock()
	ws := c.waiters[id]
	c.mu.Unlock()
	if conv != "" && !slices.ContainsFunc(ws, func(p *pending) bool { return p.conv == conv }) {
		return false // a late answer to an earlier send of this id to another conversation
	}
	found := false
	for _, p := range ws {
		if conv != "" && p.conv != conv {
			continue
		}
		found = true
		if o.err != nil && retryable(o.err.Code) {
			select {
			case p.retry <- struct{}{}:
			default:
			}
			continue
		}
		p.once.Do(func() { p.res = o; close(p.done) })
	}
	return found
}

// retryable codes leave the outcome of a send unknown: it is sent again with the
// same id.
func retryable(code string) bool { return code == "unavailable" || code == "rate_limited" }

// NewID returns a fresh client message id, unique to this Client: a random
// prefix and a counter.
func (c *Client) NewID() string {
	return c.prefix + "-" + strconv.FormatUint(c.ids.Add(1), 36)
}

// Send sends text to the user to and returns the message id once the server has
// committed it. It assigns a new client id and sends it again, with the same id,
// after a reconnection or an unavailable answer, until the server answers sent,
// answers another error (*SendError), ctx ends or the client closes. A send that
// returns ctx's error may still have been committed.
func (c *Client) Send(ctx context.Context, to, text string) (int64, error) {
	return c.SendID(ctx, c.NewID(), to, text)
}

// SendID is Send with a client id of the caller's (1-64 characters): sending an
// id again, even from another Client of the same user, returns the first
// message's id and creates no second message. Error frames carry only the id, so
// concurrent SendID calls with one id to different users share their errors.
func (c *Client) SendID(ctx context.Context, id, to, text string) (int64, error) {
	switch n := utf8.RuneCountInString(id); {
	case n == 0 || n > 64:
		return 0, fmt.Errorf("client: client id must have 1 to 64 characters, has %d", n)
	case to == "" || text == "":
		return 0, errors.New("client: send needs a recipient and a text")
	}
	c.start()
	p := &pending{conv: convid.DirectID(c.opts.Username, to), done: make(chan struct{}), retry: make(chan struct{}, 1)}
	c.mu.Lock()
	c.waiters[id] = append(slices.Clip(c.waiters[id]), p) // copy on write, as in forget
	c.mu.Unlock()
	defer c.forget(id, p)

	frame := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, To: to, Text: text}}}
	retries := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		c.mu.Lock()
		cs, gen := c.conn, c.connGen
		c.mu.Unlock()
		if cs != nil {
			if err := cs.conn.Write(frame); err != nil {
				_ = cs.conn.Drop() // reconnect; gen fires when a new connection is up
			}
		}
		var wait <-chan time.Time
	waiting:
		for {
			select {
			case <-p.done:
				if p.res.err != nil {
					return 0, &SendError{ID: id, Code: p.res.err.Code, Message: p.res.err.Message}
				}
				return p.res.messageID, nil
			case <-p.retry:
				c.log.Debug("send answered unavailable; sending again", slog.String("id", id), slog.Int("retries", retries))
				if wait == nil {
					timer.Reset(c.opts.Backoff.Delay(retries))
					wait = timer.C
					retries++
				}
			case <-wait:
				break waiting
			case <-gen:
				c.log.Debug("new connection; sending again", slog.String("id", id))
				break waiting
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-c.failed:
				return 0, c.fatalErr
			case <-c.ctx.Done():
				return 0, ErrClosed
			}
		}
	}
}

func (c *Client) forget(id string, p *pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A new slice: resolve may be reading the old one outside the lock.
	ws := slices.DeleteFunc(slices.Clone(c.waiters[id]), func(q *pending) bool { return q == p })
	if len(ws) == 0 {
		delete(c.waiters, id)
	} else {
		c.waiters[id] = ws
	}
}

// ---- delivery ----

// item is a queued message, or the end of a synced answer (upTo).
type item struct {
	msg    Message
	synced bool
	upTo   uint64
	more   bool
}

func (c *Client) push(it item) {
	c.qmu.Lock()
	c.queue = append(c.queue, it)
	c.qmu.Unlock()
	select {
	case c.qready <- struct{}{}:
	default:
	}
}

// dispatch hands queued messages to OnMessage, drops repeats and moves the cursor.
func (c *Client) dispatch() {
	defer c.wg.Done()
	handled := 0
	for {
		select {
		case <-c.qready:
		case <-c.ctx.Done():
			return
		}
		for {
			c.qmu.Lock()
			batch := c.queue
			c.queue = nil
			c.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, it := range batch {
				if c.ctx.Err() != nil {
					return
				}
				if c.apply(it) {
					handled++
					if handled%c.opts.AckEvery == 0 {
						c.requestAck()
					}
				}
			}
		}
		c.requestAck()
	}
}

// apply handles one item; it reports whether OnMessage was called.
func (c *Client) apply(it item) bool {
	cur, known := c.cursor.Load(), c.cursorKnown.Load()
	if it.synced {
		// Everything of that connection up to upTo was queued before this: the
		// cursor is at least upTo. At the end of the queue (more=false) upTo is at
		// least every seq ever delivered, so an upTo below the cursor means the
		// server's queue ends before it (a made-up cursor, another database):
		// follow the server, or live entries after its end would be taken for
		// repeats.
		if !known || it.upTo > cur {
			c.cursor.Store(it.upTo)
		} else if it.upTo < cur && !it.more {
			c.log.Warn("server queue ends before the client's cursor; moving the cursor back",
				slog.Uint64("cursor", cur), slog.Uint64("end", it.upTo))
			c.cursor.Store(it.upTo)
		}
		c.cursorKnown.Store(true)
		return false
	}
	m := it.msg
	if known && m.Seq <= cur {
		return false // handled already (replayed by a later connection)
	}
	fresh := c.dedupe.add(m.ID) // false: the same message at another seq
	if fresh && c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
	// Only now is the message handled: the cursor (and so the next ack) moves.
	c.cursor.Store(m.Seq)
	c.cursorKnown.Store(true)
	return fresh
}

func (c *Client) requestAck() {
	select {
	case c.ackReq <- struct{}{}:
	default:
	}
}

// idSet remembers the last n ids added.
type idSet struct {
	ids  map[int64]struct{}
	ring []int64
	next int
}

func newIDSet(n int) *idSet {
	return &idSet{ids: make(map[int64]struct{}, n), ring: make([]int64, 0, n)}
}

// add reports whether id is new.
func (s *idSet) add(id int64) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, id)
	} else {
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.ids[id] = struct{}{}
	return true
}
