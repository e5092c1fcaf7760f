package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Socket is the connection actor's view of its WebSocket (implemented by the
// gateway): frame writes, serialized with the reader's control replies, and close.
type Socket interface {
	Write(f *parleypb.ServerFrame) error
	// WriteMessage writes a message frame with seq, without changing m (one message
	// may be written to many sockets at once).
	WriteMessage(m *parleypb.Message, seq uint64) error
	// Cork holds the frames written until Uncork, which writes them together.
	Cork()
	Uncork()
	// LastHeard is when bytes last arrived from the client.
	LastHeard() time.Time
	Close(code int, reason string)
}

// Session is how the gateway feeds a connection actor.
type Session struct {
	root *actor.RootContext
	pid  *actor.PID
}

type (
	inbound struct {
		frame   *parleypb.ClientFrame
		decoded int64 // Unix ns
	}
	badFrame     struct{ err error }
	socketClosed struct{}
	shutdown     struct{}
	// wake runs f in the actor: what after scheduled.
	wake struct{ f func() }
	// idle: only heartbeats came for presence.awayAfter.
	idle struct{}
)

var idleNotice = &idle{}

// Frame hands a decoded client frame to the actor.
func (s *Session) Frame(f *parleypb.ClientFrame) {
	s.root.Send(s.pid, &inbound{frame: f, decoded: metrics.Now()})
}

// BadFrame hands a frame that failed to decode to the actor (it answers error).
func (s *Session) BadFrame(err error) { s.root.Send(s.pid, &badFrame{err: err}) }

// Closed tells the actor its socket is gone.
func (s *Session) Closed() { s.root.Send(s.pid, &socketClosed{}) }

// Shutdown asks the actor to write what it has queued, then close with 1001.
func (s *Session) Shutdown() { s.root.Send(s.pid, &shutdown{}) }

// Idle tells the actor that only heartbeats came for presence.awayAfter: its device
// shows away until it sends another frame.
func (s *Session) Idle() { s.root.Send(s.pid, idleNotice) }

// connProps is the one Props of every connection actor (a Props per socket cost
// each idle connection a third of a KiB). The actor gets its socket in its first
// message, connInit. A panic stops it, closing its socket, instead of restarting it
// empty: a connection's state (what it has written) cannot be rebuilt.
var connProps = actor.PropsFromProducer(func() actor.Actor { return &Connection{} },
	actor.WithDispatcher(mailboxes),
	actor.WithGuardian(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })))

// connInit is a connection actor's first message: what it serves.
type connInit struct {
	deps         *Deps
	sock         Socket
	user, device string
}

// SpawnConnection starts the connection actor of an authenticated socket.
func SpawnConnection(d *Deps, sock Socket, user, device string) *Session {
	root := d.Cluster.ActorSystem.Root
	pid := root.SpawnPrefix(connProps, "conn")
	root.Send(pid, &connInit{deps: d, sock: sock, user: user, device: device}) // before any frame
	return &Session{root: root, pid: pid}
}

// Connection is the actor of one WebSocket: it turns client frames into grain
// requests and store reads, and is the single writer of frames to its socket.
//
// Stream rule: message frames go out in increasing seq order, with no gap. Live
// pushes start after a sync that reached the end of the queue. A push that skips
// ahead of what this socket has waits (up to gapWait) for the entries before it,
// which another conversation's commit is pushing; then the missing ones are read
// from the store.
type Connection struct {
	deps     *Deps
	sock     Socket
	user     string
	device   string
	since    int64  // when it started (Unix ms), for the admin endpoint
	cursor   uint64 // the device's cursor, as far as this connection knows
	lastSent uint64 // highest seq written to this socket
	synced   bool   // a sync has been answered: a sync without after continues after lastSent
	live     bool
	closed   bool
	attached bool
	away     bool              // the device said away (presence frame)
	idle     bool              // only heartbeats came for presence.awayAfter, and nothing since
	waiting  []*parleypb.Sync  // syncs that came before the first attach was done
	grain    *actor.PID        // the user grain activation this connection attached to
	ahead    map[uint64]*entry // live entries past a gap
	checking bool              // a gap check is scheduled

	// This connection's share of its user's budgets (nil: no limit until the
	// first attach answers).
	sends, reads *bucket
	paced        []func()         // reads waiting for the read budget, in order
	pacing       bool             // a timer runs for paced
	typed        map[string]int64 // conversation -> when this connection last told of typing (Unix ns)
	feed         *FeedSub         // this socket's channel subscription (after a channels frame)
	// What was written and not acknowledged yet, and acknowledged and not saved yet;
	// nil when neither (one pointer: an idle connection stays in its size class).
	acks *acks
}

// entry is a live queue entry held until the entries before it are written.
type entry struct {
	msg                *parleypb.Message
	committed, decoded int64
}

const (
	// gapWait is how long a live entry past a gap waits for the pushes before it.
	gapWait = 50 * time.Millisecond
	// maxWaiting bounds the syncs held before the first attach is done.
	maxWaiting = 4
	// reattachRetries bounds how long a connection whose user grain moved keeps
	// trying to attach to the next activation (with backoff) before it closes with
	// 1011.
	reattachRetries = 8
	// maxPaced bounds the reads held for the read budget; more are refused.
	maxPaced = 4
	// maxTyped bounds the conversations a connection remembers typing to.
	maxTyped = 64
)

// Receive handles one message.
func (c *Connection) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *connInit:
		c.deps, c.sock, c.user, c.device, c.since = m.deps, m.sock, m.user, m.device, time.Now().UnixMilli()
		// In the node's index from its first message to Stopped, in its own order; user,
		// device and since never change after this, so the index reads them under its lock.
		c.deps.Topology.addConn(ctx.Self(), c)
		c.attach(ctx, 0)
	case *inbound:
		if _, ping := m.frame.Body.(*parleypb.ClientFrame_Ping); !ping && c.idle {
			c.idle = false // active again: away only if the device says so
			c.tellStatus(ctx)
		}
		c.handle(ctx, m)
	case *idle:
		if !c.idle {
			c.idle = true
			c.tellStatus(ctx)
		}
	case *badFrame:
		var fe *wire.FrameError
		if errors.As(m.err, &fe) {
			c.writeError(fe.ID, fe.Code, fe.Message)
		} else {
			c.writeError("", parleypb.ErrorReason_BAD_REQUEST.Code(), "bad frame")
		}
	case *parleypb.Deliver:
		c.sock.Cork() // the entries of a commit go out in one write
		c.deliver(ctx, m)
		c.sock.Uncork()
	case *parleypb.Notify:
		if m.Typing != nil {
			c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Typing{Typing: m.Typing}})
		}
		if m.Presence != nil { // a contact's status changed
			c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Presence{Presence: m.Presence}})
		}
		if m.Receipt != nil { // a node from before receipts.tellDelay
			c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Receipt{Receipt: m.Receipt}})
		}
		if len(m.Receipts) > 0 {
			c.sock.Cork() // told together: one write
			for _, r := range m.Receipts {
				c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Receipt{Receipt: r}})
			}
			c.sock.Uncork()
		}
	case *parleypb.Share:
		c.setShare(m)
	case *parleypb.LoggedOut:
		if m.DeviceId == c.device {
			c.close(ctx, wire.CloseNormal, "logged out")
		}
	case *parleypb.Reattach:
		c.attach(ctx, 1)
	case *membersChanged:
		if m.gone(c.grain) { // the user grain's node is gone (it could not say Reattach)
			c.deps.Cluster.PidCache.RemoveByValue(c.user, KindUser, c.grain)
			c.grain = nil
			c.attach(ctx, 1)
		}
	case *actor.Stopped:
		if c.deps == nil {
			return
		}
		c.deps.Topology.removeConn(ctx.Self())
		c.leaveChannels()
		if !c.closed { // stopped by a panic
			c.closed = true
			c.sock.Close(wire.CloseInternalError, "internal error")
			c.detach(ctx)
		}
	case *socketClosed:
		c.closed = true
		c.leaveChannels()
		c.detach(ctx)
		ctx.Stop(ctx.Self())
	case *shutdown:
		c.close(ctx, wire.CloseGoingAway, "server shutting down")
	case *adminDisconnectMsg:
		c.close(ctx, wire.CloseDisconnected, "disconnected by an operator")
	case *wake:
		m.f()
	}
}

// after runs f in the actor once d has passed (at once when d is 0). A timer
// sends the actor a message: unlike a future, it registers no process, so the
// read pacing and the gap waits, which run many times a second, add nothing to
// the process registry. If the actor has stopped by then, the message is a dead
// letter and f never runs.
func (c *Connection) after(ctx actor.Context, d time.Duration, f func()) {
	if d <= 0 {
		f()
		return
	}
	root, self := ctx.ActorSystem().Root, ctx.Self()
	time.AfterFunc(d, func() { root.Send(self, &wake{f: f}) })
}

// attach registers with the user grain: at start (attempt 0), and again (attempt
// 1, 2, ...) when the grain's activation stopped, filling what the connection
// missed meanwhile from the store. A failed first attach closes the socket with
// 1011; a failed re-attach is tried again with backoff while the connection keeps
// serving frames.
func (c *Connection) attach(ctx actor.Context, attempt int) {
	if c.closed {
		return
	}
	req := &parleypb.AttachRequest{Conn: ctx.Self(), DeviceId: c.device}
	ask(c.deps, ctx, c.user, KindUser, req, func(r *parleypb.AttachResponse, err error) {
		if c.closed {
			return
		}
		if parleypb.ReasonOf(err) == parleypb.ErrorReason_RATE_LIMITED {
			c.close(ctx, wire.ClosePolicy, "too many connections for this user")
			return
		}
		if err != nil {
			if attempt == 0 || attempt >= reattachRetries {
				c.deps.Log.Warn("attaching connection", slog.String("user_id", c.user), slog.Any("error", err))
				c.close(ctx, wire.CloseInternalError, "unavailable")
				return
			}
			c.after(ctx, time.Duration(attempt*attempt)*100*time.Millisecond, func() { c.attach(ctx, attempt+1) })
			return
		}
		if pid, ok := c.deps.Cluster.PidCache.Get(c.user, KindUser); ok {
			c.grain = pid // the activation, for membersChanged
		}
		c.setShare(r.Share)
		if attempt > 0 && c.live {
			c.fill(0) // what was pushed while no activation held this connection
		}
		c.attached = true
		for _, s := range c.waiting {
			c.paceSync(ctx, s)
		}
		c.waiting = nil
	})
}

// setShare applies this connection's share of the user's budgets.
func (c *Connection) setShare(s *parleypb.Share) {
	if s == nil {
		return
	}
	if c.sends == nil {
		c.sends, c.reads = newBucket(s.SendRate, s.SendBurst), newBucket(s.ReadRate, s.ReadBurst)
		return
	}
	c.sends.set(s.SendRate, s.SendBurst)
	c.reads.set(s.ReadRate, s.ReadBurst)
}

// read runs a client's read (a sync, a history page; run returns the entries it
// wrote) within the user's read budget: at once while the budget lasts, else in
// order once it has refilled. Past maxPaced reads waiting, refuse answers
// rate_limited.
func (c *Connection) read(ctx actor.Context, run func() int, refuse func(msg string)) {
	if len(c.paced) == 0 && c.reads.ready() {
		c.reads.spend(float64(run()))
		return
	}
	if len(c.paced) == maxPaced {
		refuse(fmt.Sprintf("reading faster than this user's budget; try again in %s", c.reads.wait().Round(time.Millisecond)))
		return
	}
	c.paced = append(c.paced, func() { c.reads.spend(float64(run())) })
	c.pace(ctx)
}

// pace runs the held reads as the read budget refills.
func (c *Connection) pace(ctx actor.Context) {
	if c.pacing {
		return
	}
	c.pacing = true
	c.after(ctx, c.reads.wait(), func() {
		c.pacing = false
		for len(c.paced) > 0 && c.reads.ready() && !c.closed {
			run := c.paced[0]
			c.paced = c.paced[1:]
			run()
		}
		if len(c.paced) > 0 && !c.closed {
			c.pace(ctx)
		}
	})
}

// tellStatus tells the user grain whether this device shows away: it said so, or
// only heartbeats came from it for presence.awayAfter.
func (c *Connection) tellStatus(ctx actor.Context) {
	c.deps.tell(ctx, c.user, KindUser, &parleypb.DeviceStatus{Conn: ctx.Self(), Away: c.away || c.idle})
}

func (c *Connection) detach(ctx actor.Context) {
	c.saveAcks()
	c.deps.tell(ctx, c.user, KindUser, &parleypb.DetachRequest{Conn: ctx.Self(), LastHeard: c.sock.LastHeard().UnixMilli()})
}

func (c *Connection) close(ctx actor.Context, code int, reason string) {
	if !c.closed {
		c.closed = true
		c.sock.Close(code, reason)
		c.detach(ctx)
	}
	ctx.Stop(ctx.Self())
}

func (c *Connection) handle(ctx actor.Context, in *inbound) {
	switch b := in.frame.Body.(type) {
	case *parleypb.ClientFrame_Send:
		c.send(ctx, b.Send, in.decoded)
	case *parleypb.ClientFrame_Sync:
		if !c.attached {
			if len(c.waiting) == maxWaiting {
				c.waiting = c.waiting[1:]
			}
			c.waiting = append(c.waiting, b.Sync)
			return
		}
		c.paceSync(ctx, b.Sync)
	case *parleypb.ClientFrame_Received:
		c.received(ctx, b.Received.UpTo)
	case *parleypb.ClientFrame_Read:
		c.markRead(ctx, b.Read)
	case *parleypb.ClientFrame_History:
		c.history(ctx, b.History)
	case *parleypb.ClientFrame_Typing:
		c.typing(ctx, b.Typing)
	case *parleypb.ClientFrame_Ping:
		c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}})
	case *parleypb.ClientFrame_Presence: // the shape was checked when decoded
		c.away = b.Presence.Status == "away"
		c.tellStatus(ctx)
	case *parleypb.ClientFrame_Channels:
		c.channels()
	default:
		c.writeError("", parleypb.ErrorReason_BAD_REQUEST.Code(), wire.TypeOf(in.frame)+" is not available yet")
	}
}

func (c *Connection) send(ctx actor.Context, s *parleypb.Send, decoded int64) {
	req := &parleypb.PostRequest{From: c.user, ClientId: s.Id, Text: s.Text, DecodedAt: decoded}
	switch {
	case len(s.Text) > c.deps.Settings.MaxTextBytes:
		c.writeError(s.Id, parleypb.ErrorReason_TOO_LARGE.Code(),
			fmt.Sprintf("text is longer than %d bytes", c.deps.Settings.MaxTextBytes))
		return
	case s.Channel != "":
		if !convid.ValidGroupID(s.Channel) {
			c.writeError(s.Id, parleypb.ErrorReason_BAD_REQUEST.Code(), "malformed channel id")
			return
		}
		req.Conversation, req.Channel = convid.ChannelID(s.Channel), s.Channel
	case s.Group != "":
		if !convid.ValidGroupID(s.Group) {
			c.writeError(s.Id, parleypb.ErrorReason_BAD_REQUEST.Code(), "malformed group id")
			return
		}
		req.Conversation, req.Group = convid.GroupID(s.Group), s.Group
	case !convid.UserID.MatchString(s.To):
		c.writeError(s.Id, parleypb.ErrorReason_BAD_REQUEST.Code(), "to is not a user id")
		return
	case s.To == c.user:
		c.writeError(s.Id, parleypb.ErrorReason_BAD_REQUEST.Code(), "cannot send to yourself")
		return
	default:
		req.Conversation, req.To = convid.DirectID(c.user, s.To), s.To
	}
	if !c.sends.take() {
		c.writeError(s.Id, parleypb.ErrorReason_RATE_LIMITED.Code(), fmt.Sprintf(
			"sending faster than this user's budget; send it again in %s", c.sends.wait().Round(time.Millisecond)))
		return
	}
	if e := c.existsConv(req); e != nil {
		c.writeGrainError(s.Id, e, "store unavailable; send it again with the same id")
		return
	}
	ask(c.deps, ctx, req.Conversation, KindConversation, req, func(r *parleypb.PostResponse, err error) {
		if err != nil {
			c.writeGrainError(req.ClientId, err,
				"not confirmed committed; send it again with the same id, a repeat is stored once")
			return
		}
		c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
			Id: req.ClientId, MessageId: r.MessageId, Conversation: req.Conversation, Ts: r.Ts}}})
		c.deps.Metrics.Since(metrics.StageSent, r.CommittedAt)
	})
}

// paceSync runs a sync within the read budget.
func (c *Connection) paceSync(ctx actor.Context, s *parleypb.Sync) {
	c.read(ctx, func() int { return c.sync(s) }, func(msg string) {
		c.writeError("", parleypb.ErrorReason_RATE_LIMITED.Code(), msg)
	})
}

// sync replays the queue after after, then answers synced. Without after it
// continues where this connection's last answer ended, or, on a connection that has
// not synced yet, after the device's cursor (read with the page). Reaching the end
// makes the connection live.
// It returns the entries it wrote.
func (c *Connection) sync(s *parleypb.Sync) int {
	limit := c.deps.Settings.SyncBatch
	if s.Limit > 0 && int(s.Limit) < limit {
		limit = int(s.Limit)
	}
	var after uint64
	var page persistence.QueuePage
	var err error
	cx, cancel := c.deps.timeout()
	switch {
	case s.After != nil:
		after = *s.After
		page, err = c.deps.Store.ReadQueue(cx, c.user, after, limit)
	case c.synced:
		after = c.lastSent
		page, err = c.deps.Store.ReadQueue(cx, c.user, after, limit)
	default:
		page, err = c.deps.Store.ReadQueueAtCursor(cx, c.user, c.device, limit)
		c.cursor = max(c.cursor, page.Cursor)
		after = page.Cursor
	}
	cancel()
	if err != nil {
		c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "sync failed; try again")
		return 0
	}
	more := len(page.Entries) == limit
	upTo := after
	if !more {
		// At the end of the queue: a position past it (a stale or made-up after)
		// becomes the end, so that live entries after it are not skipped.
		upTo = min(after, page.End)
	}
	c.sock.Cork() // the page and its synced go out in one write
	defer c.sock.Uncork()
	for _, m := range page.Entries {
		c.writeMessage(m, m.Seq)
		upTo = m.Seq
	}
	c.lastSent, c.synced, c.live = upTo, true, !more
	if c.live {
		c.flushAhead()
	} else {
		c.ahead = nil
	}
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{UpTo: upTo, More: more}}})
	return len(page.Entries)
}

// received moves the device's cursor: to what this connection sent at most (a
// device can only have received that), and only forward. Each conversation of the
// messages it covers gets a delivered watermark, told live at once through the
// node's relay; the cursor and the watermarks are written together, gathered for
// Settings.AckSaveDelay (saveAcks).
func (c *Connection) received(ctx actor.Context, upTo uint64) {
	if upTo = min(upTo, c.lastSent); upTo <= c.cursor {
		return
	}
	c.cursor = upTo
	if c.acks == nil {
		c.acks = &acks{} // every message written was acknowledged, or forgotten (maxUnacked)
	}
	marks := c.acks.take(upTo, c.user)
	c.deps.receipts(marks, nil)
	c.gatherAcks(ctx, upTo, marks)
}

// gatherAcks gathers a cursor move (0: none) and watermarks for one write after
// Settings.AckSaveDelay, or writes them at once without a delay.
func (c *Connection) gatherAcks(ctx actor.Context, cursor uint64, marks []persistence.ReceiptMove) {
	if c.acks == nil {
		c.acks = &acks{}
	}
	if delay := c.deps.Settings.AckSaveDelay; delay > 0 {
		if !c.acks.saving {
			c.acks.saving = true
			c.after(ctx, delay, c.saveAcks)
		}
		c.acks.merge(cursor, marks)
		return
	}
	c.deps.Store.SaveCursor(c.user, c.device, cursor, marks, nil)
	c.dropAcks()
}

// saveAcks writes the gathered cursor and delivered watermarks: when the delay is
// over, and before the connection ends.
func (c *Connection) saveAcks() {
	if a := c.acks; a != nil && a.saving {
		c.deps.Store.SaveCursor(c.user, c.device, a.cursor, a.marks, nil)
		a.saving, a.cursor, a.marks = false, 0, nil
		c.dropAcks()
	}
}

// dropAcks lets the acks go when they hold nothing.
func (c *Connection) dropAcks() {
	if a := c.acks; a != nil && len(a.sent) == 0 && !a.saving && a.recent == nil {
		c.acks = nil
	}
}

// deliver writes live entries in seq order; one past a gap waits for the gap.
func (c *Connection) deliver(ctx actor.Context, d *parleypb.Deliver) {
	if !c.live {
		return // the next sync reads them
	}
	for i, m := range d.Messages {
		seq := m.Seq
		if d.FirstSeq != 0 {
			seq = d.FirstSeq + uint64(i)
		}
		if seq <= c.lastSent {
			continue
		}
		e := &entry{msg: m, committed: d.CommittedAt}
		if i < len(d.DecodedAt) {
			e.decoded = d.DecodedAt[i]
		}
		if seq == c.lastSent+1 {
			c.writeEntry(e)
			continue
		}
		if c.ahead == nil {
			c.ahead = map[uint64]*entry{}
		}
		c.ahead[seq] = e
	}
	c.flushAhead()
	switch {
	case len(c.ahead) > c.deps.Settings.SyncBatch:
		c.fillAhead()
	case len(c.ahead) > 0 && !c.checking:
		c.checking = true
		c.after(ctx, gapWait, func() {
			c.checking = false
			if len(c.ahead) > 0 && c.live {
				c.fillAhead()
			}
		})
	}
}

// writeEntry writes the entry that follows lastSent.
func (c *Connection) writeEntry(e *entry) {
	c.lastSent++
	c.writeMessage(e.msg, c.lastSent)
	c.deps.Metrics.Since(metrics.StageDeliver, e.committed)
	c.deps.Metrics.Since(metrics.StageDelivery, e.decoded)
}

// flushAhead writes the held entries that follow lastSent, and drops those at or
// below it.
func (c *Connection) flushAhead() {
	for len(c.ahead) > 0 {
		e, ok := c.ahead[c.lastSent+1]
		if !ok {
			break
		}
		delete(c.ahead, c.lastSent+1)
		c.writeEntry(e)
	}
	for seq := range c.ahead {
		if seq <= c.lastSent {
			delete(c.ahead, seq)
		}
	}
}

// fillAhead reads from the store the entries missing before the held ones.
func (c *Connection) fillAhead() {
	var top uint64
	for seq := range c.ahead {
		top = max(top, seq)
	}
	c.fill(top)
	c.flushAhead()
}

// fill writes the entries after lastSent from the store: up to upTo, or (0) to the
// queue's end. If the read fails, live pushes stop until the client syncs again.
func (c *Connection) fill(upTo uint64) {
	for upTo == 0 || c.lastSent < upTo {
		limit := c.deps.Settings.SyncBatch
		if upTo != 0 {
			limit = min(int(upTo-c.lastSent), limit)
		}
		cx, cancel := c.deps.timeout()
		page, err := c.deps.Store.ReadQueue(cx, c.user, c.lastSent, limit)
		cancel()
		if err != nil || (upTo != 0 && len(page.Entries) == 0) {
			c.live, c.ahead = false, nil
			c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "live delivery interrupted; send sync to resume")
			return
		}
		c.sock.Cork() // a page in one write
		for _, m := range page.Entries {
			c.writeMessage(m, m.Seq)
			c.lastSent = m.Seq
		}
		c.sock.Uncork()
		if upTo == 0 && len(page.Entries) < limit {
			return
		}
	}
}

func (c *Connection) history(ctx actor.Context, h *parleypb.HistoryRequest) {
	c.member(ctx, h.Id, h.Conversation, func(floor int64) { c.paceHistory(ctx, h, floor) })
}

// member runs then with the message id the user's part of conv starts after (a
// group member's join; 0 for a direct conversation) if the user is a member, and
// answers the frame with id with an error otherwise: bad_request for a malformed
// id, forbidden, or the group's not_found or unavailable.
func (c *Connection) member(ctx actor.Context, id, conv string, then func(floor int64)) {
	cid, err := convid.Parse(conv)
	switch {
	case err != nil:
		c.writeError(id, parleypb.ErrorReason_BAD_REQUEST.Code(), "malformed conversation id")
	case cid.Kind == convid.Group:
		if e := c.exists("", cid.Group); e != nil {
			c.writeGrainError(id, e, "store unavailable; try again")
			return
		}
		req := &parleypb.GroupRequest{Op: parleypb.GroupRequest_MEMBERSHIP, Group: cid.Group, By: c.user}
		ask(c.deps, ctx, conv, KindConversation, req, func(r *parleypb.GroupResponse, err error) {
			if err != nil {
				c.writeGrainError(id, err, "group unavailable; try again")
				return
			}
			then(r.JoinedAt)
		})
	case cid.Kind == convid.Channel:
		if e := c.channelMember(cid.Group); e != nil {
			c.writeGrainError(id, e, "store unavailable; try again")
			return
		}
		then(0) // a member reads the whole channel
	case cid.Members[0] != c.user && cid.Members[1] != c.user:
		c.writeError(id, parleypb.ErrorReason_FORBIDDEN.Code(), "not a member of "+conv)
	default:
		then(0)
	}
}

// paceHistory answers a history request within the read budget.
func (c *Connection) paceHistory(ctx actor.Context, h *parleypb.HistoryRequest, floor int64) {
	c.read(ctx, func() int { return c.readHistory(h, floor) }, func(msg string) {
		c.writeError(h.Id, parleypb.ErrorReason_RATE_LIMITED.Code(), msg)
	})
}

// readHistory answers a history request from the store; floor is the id the
// caller's history starts after (a group member's join).
func (c *Connection) readHistory(h *parleypb.HistoryRequest, floor int64) int {
	limit := c.deps.Settings.HistoryDefault
	if h.Limit > 0 {
		limit = min(int(h.Limit), c.deps.Settings.HistoryMax)
	}
	cx, cancel := c.deps.timeout()
	defer cancel()
	var msgs []*parleypb.Message
	var more bool
	var err error
	if h.After > 0 {
		msgs, more, err = c.deps.Store.HistoryAfter(cx, h.Conversation, max(h.After, floor), h.Before, limit)
	} else {
		msgs, more, err = c.deps.Store.History(cx, h.Conversation, h.Before, floor, limit)
	}
	var receipts []*parleypb.Receipt
	if err == nil && h.Before == 0 && h.After == 0 && !strings.HasPrefix(h.Conversation, convid.Channel+":") {
		receipts, err = c.historyReceipts(h.Conversation)
	}
	if err != nil {
		c.writeError(h.Id, parleypb.ErrorReason_UNAVAILABLE.Code(), "history failed; try again")
		return 0
	}
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_History{History: &parleypb.History{
		Id: h.Id, Conversation: h.Conversation, Messages: msgs, More: more, Receipts: receipts}}})
	return len(msgs)
}

// typing tells the conversation's grain, which forwards to the online members.
func (c *Connection) typing(ctx actor.Context, t *parleypb.Typing) {
	var conv string
	switch {
	case t.Group != "":
		if !convid.ValidGroupID(t.Group) {
			c.writeError("", parleypb.ErrorReason_BAD_REQUEST.Code(), "malformed group id")
			return
		}
		conv = convid.GroupID(t.Group)
	case !convid.UserID.MatchString(t.To) || t.To == c.user:
		c.writeError("", parleypb.ErrorReason_BAD_REQUEST.Code(), "typing needs a valid recipient")
		return
	default:
		conv = convid.DirectID(c.user, t.To)
	}
	if !c.typingDue(conv) {
		return // told moments ago: coalesced
	}
	if c.exists(t.To, t.Group) != nil {
		return // to nobody: dropped, as typing to a conversation the user is not in
	}
	c.deps.tell(ctx, conv, KindConversation, &parleypb.TypingRequest{Conversation: conv, From: c.user})
}

// typingDue reports whether a typing notice to conv goes out: at most one per
// Budgets.TypingInterval (the conversation grain coalesces across the user's
// connections too).
func (c *Connection) typingDue(conv string) bool {
	every := c.deps.Settings.Budgets.TypingInterval
	if every <= 0 {
		return true
	}
	now := time.Now().UnixNano()
	if last, ok := c.typed[conv]; ok && now-last < int64(every) {
		return false
	}
	if c.typed == nil || len(c.typed) >= maxTyped {
		c.typed = map[string]int64{} // forgetting only lets one more through
	}
	c.typed[conv] = now
	return true
}

// exists checks, before a conversation grain is activated for it, that the peer
// user (to) or the group exists: not_found, or unavailable if the store cannot say.
func (c *Connection) exists(to, group string) *parleypb.GrainError {
	d := c.deps.Directory
	if d == nil {
		return nil
	}
	cx, cancel := c.deps.timeout()
	defer cancel()
	var ok bool
	var err error
	if group != "" {
		ok, err = d.GroupExists(cx, group)
	} else {
		ok, err = d.UserExists(cx, to)
	}
	switch {
	case err != nil:
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
	case !ok && group != "":
		return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such group")
	case !ok:
		return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "user %s does not exist", clip(to))
	}
	return nil
}

func (c *Connection) writeMessage(m *parleypb.Message, seq uint64) {
	if c.closed {
		return
	}
	if err := c.sock.WriteMessage(m, seq); err != nil {
		c.closed = true // the gateway closes the socket and reports it
		return
	}
	if seq > c.cursor {
		if c.acks == nil {
			c.acks = &acks{}
		}
		c.acks.add(seq, m)
	}
	if m.From != c.user && strings.HasPrefix(m.Conversation, convid.Direct+":") {
		if c.acks == nil {
			c.acks = &acks{}
		}
		if c.acks.recent == nil {
			c.acks.recent = &recent{}
		}
		c.acks.recent.add(m.Conversation, m.MessageId)
	}
}

// writeGrainError writes err as an error frame: a grain error with its own code and
// message; an unavailable one (the grain could not be reached) with msg.
func (c *Connection) writeGrainError(id string, err error, msg string) {
	var e *parleypb.GrainError
	if !errors.As(err, &e) {
		e = parleypb.Errorf(parleypb.ErrorReason_INTERNAL, "internal error")
	}
	if e.Reason == parleypb.ErrorReason_UNAVAILABLE {
		c.writeError(id, e.Code(), msg)
		return
	}
	c.writeError(id, e.Code(), e.Message)
}

func (c *Connection) writeError(id, code, msg string) {
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{Id: id, Code: code, Message: msg}}})
}

func (c *Connection) write(f *parleypb.ServerFrame) {
	if c.closed {
		return
	}
	if err := c.sock.Write(f); err != nil {
		c.closed = true // the gateway closes the socket and reports it
	}
}

// existsConv checks, before a conversation grain is activated for a post, that its
// peer, group or channel exists.
func (c *Connection) existsConv(req *parleypb.PostRequest) *parleypb.GrainError {
	if req.Channel == "" {
		return c.exists(req.To, req.Group)
	}
	d := c.deps.Directory
	if d == nil {
		return nil
	}
	cx, cancel := c.deps.timeout()
	defer cancel()
	ok, err := d.ChannelExists(cx, req.Channel)
	switch {
	case err != nil:
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
	case !ok:
		return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel")
	}
	return nil
}

// channelMember answers forbidden unless the user is a member of the channel (its
// id), from the store (a channel's members are not in any grain's memory).
func (c *Connection) channelMember(channel string) *parleypb.GrainError {
	cx, cancel := c.deps.timeout()
	defer cancel()
	_, ok, err := c.deps.Store.ChannelRole(cx, convid.ChannelID(channel), c.user)
	switch {
	case err != nil:
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
	case !ok:
		return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this channel")
	}
	return nil
}

// channels answers the channels frame: the user's channels, each with its last
// message id, the user's read position and unread count. The first one makes the
// socket a subscriber of the node's hub: it registers before it reads which
// channels the user is in, so that a join or leave committed meanwhile is not
// missed, and reads the channels' last ids after it subscribed, so that a message is
// either counted in the answer or written live (or both: a client dedupes by id).
func (c *Connection) channels() {
	hub := c.deps.Hub
	if hub == nil {
		c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "channels are not served by this node")
		return
	}
	sock, ok := c.sock.(FeedSocket)
	if !ok {
		c.writeError("", parleypb.ErrorReason_INTERNAL.Code(), "this connection cannot take channel messages")
		return
	}
	limit := c.deps.Settings.ChannelsPerUser
	cx, cancel := c.deps.timeout()
	defer cancel()
	if c.feed == nil {
		c.feed = hub.Register(c.user, sock, int(feedSeq.Add(1))) // round robin over the fan-out goroutines
		ids, err := c.deps.Store.ChannelIDsOf(cx, c.user, limit)
		if err != nil {
			hub.Leave(c.feed)
			c.feed = nil
			c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "channels failed; try again")
			return
		}
		hub.Subscribe(c.feed, ids)
	}
	states, err := c.deps.Store.ChannelsOf(cx, c.user, limit, c.deps.Settings.ChannelUnreadMax)
	if err != nil {
		c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "channels failed; try again")
		return
	}
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Channels{Channels: &parleypb.Channels{Channels: states}}})
}

// feedSeq spreads the sockets over the hub's fan-out goroutines.
var feedSeq atomic.Uint32

func (c *Connection) leaveChannels() {
	if c.feed != nil {
		c.deps.Hub.Leave(c.feed)
		c.feed = nil
	}
}
