package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Close codes of PROTOCOL.md and RFC 6455.
const (
	CloseGoingAway     = 1001 // server shutting down
	ClosePolicy        = 1008 // abuse: rate limit
	CloseTooBig        = 1009 // frame over the size limit
	CloseInternalError = 1011 // the server cannot serve the connection
)

// Socket is the connection actor's view of its WebSocket (implemented by the
// gateway): frame writes, serialized with the reader's control replies, and close.
type Socket interface {
	Write(f *parleypb.ServerFrame) error
	Close(code int, reason string)
}

// Session is how the gateway feeds a connection actor.
type Session struct {
	root *actor.RootContext
	pid  *actor.PID
}

type (
	inbound      struct{ frame *parleypb.ClientFrame }
	badFrame     struct{ err error }
	socketClosed struct{}
	shutdown     struct{}
)

// Frame hands a decoded client frame to the actor.
func (s *Session) Frame(f *parleypb.ClientFrame) { s.root.Send(s.pid, &inbound{frame: f}) }

// BadFrame hands a frame that failed to decode to the actor (it answers error).
func (s *Session) BadFrame(err error) { s.root.Send(s.pid, &badFrame{err: err}) }

// Closed tells the actor its socket is gone.
func (s *Session) Closed() { s.root.Send(s.pid, &socketClosed{}) }

// Shutdown asks the actor to write what it has queued, then close with 1001.
func (s *Session) Shutdown() { s.root.Send(s.pid, &shutdown{}) }

// SpawnConnection starts the connection actor of an authenticated socket.
func SpawnConnection(d *Deps, sock Socket, user, device string) *Session {
	root := d.Cluster.ActorSystem.Root
	props := actor.PropsFromProducer(func() actor.Actor {
		return &Connection{deps: d, sock: sock, user: user, device: device}
	}, actor.WithDispatcher(mailboxes))
	return &Session{root: root, pid: root.SpawnPrefix(props, "conn")}
}

// Connection is the actor of one WebSocket: it turns client frames into grain
// requests and store reads, and is the single writer of frames to its socket.
//
// Stream rule: message frames go out in increasing seq order. Live deliveries start
// after a sync that reached the end of the queue; a delivery that skips ahead of
// what this socket has is preceded by the missing entries, read from the store.
type Connection struct {
	deps     *Deps
	sock     Socket
	user     string
	device   string
	cursor   uint64 // the device's stored cursor, as far as this connection knows
	lastSent uint64 // highest seq written to this socket
	synced   bool   // a sync has been answered: a sync without after continues after lastSent
	live     bool
	closed   bool
	grain    *actor.PID // the user grain activation this connection is attached to
}

// Receive handles one message.
func (c *Connection) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		err := c.attach(ctx)
		for try := 1; err != nil && try < 3; try++ { // the grain may be moving
			err = c.attach(ctx)
		}
		if err != nil {
			c.deps.Log.Warn("attaching connection", slog.String("user_id", c.user), slog.Any("error", err))
			c.close(ctx, CloseInternalError, "unavailable")
		}
	case *inbound:
		c.handle(ctx, m.frame)
	case *badFrame:
		var fe *wire.FrameError
		if errors.As(m.err, &fe) {
			c.writeError(fe.ID, fe.Code, fe.Message)
		} else {
			c.writeError("", "bad_request", "bad frame")
		}
	case *parleypb.Deliver:
		c.deliver(m.Messages)
	case *parleypb.Notify:
		if m.Typing != nil {
			c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Typing{Typing: m.Typing}})
		}
	case *parleypb.Reattach:
		c.reattach(ctx, 1)
	case *actor.Terminated:
		if m.Who.Equal(c.grain) { // the user grain's activation (or its node) is gone
			c.grain = nil
			c.deps.Cluster.PidCache.RemoveByValue(c.user, KindUser, m.Who)
			c.reattach(ctx, 1)
		}
	case *reattachRetry:
		c.reattach(ctx, m.attempt)
	case *socketClosed:
		c.closed = true
		c.detach(ctx)
		ctx.Stop(ctx.Self())
	case *shutdown:
		c.close(ctx, CloseGoingAway, "server shutting down")
	}
}

// reattachRetries bounds how long a connection whose user grain moved keeps trying
// to attach to the next activation (with backoff) before it closes with 1011.
const reattachRetries = 8

type reattachRetry struct{ attempt int }

// reattach attaches to the user grain's next activation (its old one stopped). A
// failure is retried with backoff while the connection keeps serving frames.
func (c *Connection) reattach(ctx actor.Context, attempt int) {
	if c.closed {
		return
	}
	err := c.attach(ctx)
	if err == nil {
		return
	}
	if attempt >= reattachRetries {
		c.deps.Log.Warn("re-attaching connection", slog.String("user_id", c.user), slog.Any("error", err))
		c.close(ctx, CloseInternalError, "unavailable")
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	delay := time.Duration(attempt*attempt) * 100 * time.Millisecond
	time.AfterFunc(delay, func() { root.Send(self, &reattachRetry{attempt: attempt + 1}) })
}

// attach registers with the user grain; a re-attach also fills any gap missed
// while no grain held this connection. Each try waits a short while: a request
// that reaches an activation as it stops is lost, not refused.
func (c *Connection) attach(ctx actor.Context) error {
	res, err := c.deps.Cluster.Request(c.user, KindUser, &parleypb.AttachRequest{Conn: ctx.Self(), DeviceId: c.device},
		cluster.WithTimeout(min(c.deps.Settings.RequestTimeout, 2*time.Second)), cluster.WithRetryCount(3))
	if err != nil {
		return err
	}
	r, ok := res.(*parleypb.AttachResponse)
	if !ok || r.Error != nil {
		return fmt.Errorf("attach refused: %v", res)
	}
	c.cursor = max(c.cursor, r.Cursor)
	if c.live && r.LastSeq > c.lastSent {
		c.fill(r.LastSeq)
	}
	// Watch the activation: if its node dies, no Reattach comes (nothing stopped it
	// cleanly), but the watch reports it, and the connection attaches to the next one.
	if pid, ok := c.deps.Cluster.PidCache.Get(c.user, KindUser); ok && pid != nil && !pid.Equal(c.grain) {
		if c.grain != nil {
			ctx.Unwatch(c.grain)
		}
		c.grain = pid
		ctx.Watch(pid)
	}
	return nil
}

func (c *Connection) detach(ctx actor.Context) {
	c.deps.tell(ctx, c.user, KindUser, &parleypb.DetachRequest{Conn: ctx.Self()})
}

func (c *Connection) close(ctx actor.Context, code int, reason string) {
	if !c.closed {
		c.closed = true
		c.sock.Close(code, reason)
		c.detach(ctx)
	}
	ctx.Stop(ctx.Self())
}

func (c *Connection) handle(ctx actor.Context, f *parleypb.ClientFrame) {
	switch b := f.Body.(type) {
	case *parleypb.ClientFrame_Send:
		c.send(ctx, b.Send)
	case *parleypb.ClientFrame_Sync:
		c.sync(b.Sync)
	case *parleypb.ClientFrame_Received:
		// A device can only have what this connection sent it.
		if upTo := min(b.Received.UpTo, c.lastSent); upTo > c.cursor {
			c.cursor = upTo
			c.deps.tell(ctx, c.user, KindUser, &parleypb.AckRequest{DeviceId: c.device, UpTo: upTo})
		}
	case *parleypb.ClientFrame_History:
		c.history(b.History)
	case *parleypb.ClientFrame_Typing:
		c.typing(ctx, b.Typing)
	case *parleypb.ClientFrame_Ping:
		c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}})
	default:
		c.writeError("", "bad_request", wire.TypeOf(f)+" is not available yet")
	}
}

func (c *Connection) send(ctx actor.Context, s *parleypb.Send) {
	switch {
	case len(s.Text) > c.deps.Settings.MaxTextBytes:
		c.writeError(s.Id, "too_large", fmt.Sprintf("text is longer than %d bytes", c.deps.Settings.MaxTextBytes))
		return
	case s.Group != "":
		conv := convid.Group + ":" + s.Group
		if _, _, _, err := convid.Parse(conv); err != nil {
			c.writeError(s.Id, "bad_request", "malformed group id")
			return
		}
		c.post(ctx, conv, &parleypb.PostRequest{Conversation: conv, From: c.user, Group: s.Group, ClientId: s.Id, Text: s.Text}, 3)
		return
	case !convid.UserID.MatchString(s.To):
		c.writeError(s.Id, "bad_request", "to is not a user id")
		return
	case s.To == c.user:
		c.writeError(s.Id, "bad_request", "cannot send to yourself")
		return
	}
	conv := convid.DirectID(c.user, s.To)
	req := &parleypb.PostRequest{Conversation: conv, From: c.user, To: s.To, ClientId: s.Id, Text: s.Text}
	c.post(ctx, conv, req, 3)
}

// post asks the conversation grain, retrying while it answers unavailable (it is
// reloading); the same client id makes every retry safe.
func (c *Connection) post(ctx actor.Context, conv string, req *parleypb.PostRequest, tries int) {
	c.deps.ask(ctx, conv, KindConversation, req, 2, func(res any, err error) {
		r, ok := res.(*parleypb.PostResponse)
		switch {
		case err != nil || !ok:
			c.writeError(req.ClientId, "unavailable", "not confirmed committed (timed out); send it again with the same id, a repeat is stored once")
		case r.Error != nil && r.Error.Reason == parleypb.ErrorReason_UNAVAILABLE && tries > 1:
			c.post(ctx, conv, req, tries-1)
		case r.Error != nil:
			c.writeError(req.ClientId, ErrorCode(r.Error.Reason), r.Error.Message)
		default:
			c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
				Id: req.ClientId, MessageId: r.MessageId, Conversation: conv, Ts: r.Ts}}})
		}
	})
}

// sync replays the queue after after, then answers synced. Without after it
// continues where this connection's last answer ended, or, on a connection that has
// not synced yet, after the device's cursor. Reaching the end makes the connection
// live.
func (c *Connection) sync(s *parleypb.Sync) {
	after := c.cursor
	switch {
	case s.After != nil:
		after = *s.After
	case c.synced:
		after = c.lastSent
	}
	limit := c.deps.Settings.SyncBatch
	if s.Limit > 0 && int(s.Limit) < limit {
		limit = int(s.Limit)
	}
	msgs, err := c.read(after, limit)
	if err != nil {
		c.writeError("", "unavailable", "sync failed; try again")
		return
	}
	more := len(msgs) == limit
	upTo := after
	if !more {
		// At the end of the queue: a position past it (a stale or made-up after)
		// becomes the end, so that live entries after it are not skipped.
		end, err := c.end()
		if err != nil {
			c.writeError("", "unavailable", "sync failed; try again")
			return
		}
		upTo = min(after, end)
	}
	for _, m := range msgs {
		c.writeMessage(m)
		upTo = m.Seq
	}
	c.lastSent, c.synced = upTo, true
	c.live = !more
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{UpTo: upTo, More: more}}})
}

// end is the last seq of the user's queue.
func (c *Connection) end() (uint64, error) {
	cx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	return c.deps.Store.UserVersion(cx, c.user)
}

func (c *Connection) read(after uint64, limit int) ([]*parleypb.Message, error) {
	cx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	return c.deps.Store.ReadQueue(cx, c.user, after, limit)
}

// deliver writes live entries, filling from the store any gap before them.
func (c *Connection) deliver(msgs []*parleypb.Message) {
	if !c.live || len(msgs) == 0 {
		return
	}
	if first := msgs[0].Seq; first > c.lastSent+1 {
		c.fill(first - 1)
	}
	for _, m := range msgs {
		if m.Seq == c.lastSent+1 {
			c.writeMessage(m)
			c.lastSent = m.Seq
		}
	}
}

// fill writes the entries after lastSent up to upTo from the store.
func (c *Connection) fill(upTo uint64) {
	for c.lastSent < upTo {
		msgs, err := c.read(c.lastSent, min(int(upTo-c.lastSent), c.deps.Settings.SyncBatch))
		if err != nil || len(msgs) == 0 {
			c.live = false
			c.writeError("", "unavailable", "live delivery interrupted; send sync to resume")
			return
		}
		for _, m := range msgs {
			c.writeMessage(m)
			c.lastSent = m.Seq
		}
	}
}

func (c *Connection) history(h *parleypb.HistoryRequest) {
	after, errFrame := c.readable(h.Conversation)
	if errFrame != nil {
		errFrame.Id = h.Id
		c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: errFrame}})
		return
	}
	limit := c.deps.Settings.HistoryDefault
	if h.Limit > 0 {
		limit = min(int(h.Limit), c.deps.Settings.HistoryMax)
	}
	cx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	msgs, more, err := c.deps.Store.History(cx, h.Conversation, h.Before, after, limit)
	if err != nil {
		c.writeError(h.Id, "unavailable", "history failed; try again")
		return
	}
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_History{History: &parleypb.History{
		Id: h.Id, Conversation: h.Conversation, Messages: msgs, More: more}}})
}

// readable checks that the user may read conv and returns the message id its
// history starts after (a group member's join; 0 for a direct conversation).
func (c *Connection) readable(conv string) (int64, *parleypb.Error) {
	kind, members, _, err := convid.Parse(conv)
	switch {
	case err != nil:
		return 0, &parleypb.Error{Code: "bad_request", Message: "malformed conversation id"}
	case kind == convid.Group:
		return GroupHistoryFloor(c.deps, conv, c.user)
	case members[0] != c.user && members[1] != c.user:
		return 0, &parleypb.Error{Code: "forbidden", Message: "not a member of " + conv}
	}
	return 0, nil
}

// GroupHistoryFloor asks a group's grain whether user is a member, and since when:
// the id its history starts after, or the error to answer.
func GroupHistoryFloor(d *Deps, conv, user string) (int64, *parleypb.Error) {
	res, err := d.Request(conv, KindConversation, &parleypb.GroupRequest{Op: parleypb.GroupRequest_MEMBERSHIP,
		Group: strings.TrimPrefix(conv, convid.Group+":"), By: user})
	r, ok := res.(*parleypb.GroupResponse)
	switch {
	case err != nil || !ok:
		return 0, &parleypb.Error{Code: "unavailable", Message: "group unavailable; try again"}
	case r.Error != nil:
		return 0, &parleypb.Error{Code: ErrorCode(r.Error.Reason), Message: r.Error.Message}
	}
	return r.JoinedAt, nil
}

// typing tells the conversation's grain, which forwards to the online members.
func (c *Connection) typing(ctx actor.Context, t *parleypb.Typing) {
	conv := convid.Group + ":" + t.Group
	if t.Group == "" {
		if !convid.UserID.MatchString(t.To) || t.To == c.user {
			c.writeError("", "bad_request", "typing needs a valid recipient")
			return
		}
		conv = convid.DirectID(c.user, t.To)
	}
	c.deps.tell(ctx, conv, KindConversation, &parleypb.TypingRequest{Conversation: conv, From: c.user})
}

func (c *Connection) writeMessage(m *parleypb.Message) {
	c.write(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}})
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
