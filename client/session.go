package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/wire"
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
