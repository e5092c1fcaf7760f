package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/proto/parleypb"
)

// The connection supervisor of a Client: login, dial, sync, heartbeats, and
// reconnecting to the next node with backoff.

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
func (c *Client) do(req *http.Request, out any) error { return DoWith(c.http, req, out) }

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
