package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

const (
	fanoutBatch   = 500         // messages per enqueue request, at most
	batchBytes    = 256 << 10   // text bytes per enqueue or delivery, at most (remote batches stay small)
	recentClients = 4096        // client ids remembered for answering repeats without a read
	retryFanout   = time.Second // pause before re-driving a failed enqueue
)

// Conversation is the grain that is the single writer of one conversation: it
// dedupes client ids, assigns message ids in order, appends to the store, answers
// the sender only after the commit, then enqueues each message into every member's
// user grain until each acknowledges (the committed event is the outbox).
type Conversation struct {
	deps    *Deps
	id      string
	members []string
	grp     *groupState // nil for a direct conversation
	known   bool        // every member is an existing user (direct conversations)
	broken  bool        // the store failed repeatedly: stopping

	version   uint64 // stream version
	lastID    int64  // highest message id assigned
	committed int64  // highest message id committed

	pending  []*post          // waiting for the next append
	inflight []*post          // in the append under way
	byKey    map[string]*post // pending and inflight posts by sender and client id
	recent   recentSent
	recovery recovery

	delivered map[string]int64 // member -> highest message id its queue acknowledged
	sending   map[string]bool  // member -> an enqueue is under way
	tail      []*parleypb.Message
	tailBase  int64 // every committed message above tailBase is in tail
	acks      int   // acknowledgements since the last snapshot
	behind    int   // members lacking committed messages, as last counted
	retrying  bool
}

// post is a queued change: a message (req, msg) or a group operation (op, event).
type post struct {
	req     *parleypb.PostRequest
	msg     *parleypb.Message
	op      *parleypb.GroupRequest
	event   *parleypb.GroupEvent
	waiters []*actor.PID
}

type conversationAppended struct {
	res persistence.ConversationAppended
	err error
}

type fanoutRetry struct{}

// Receive handles one message.
func (c *Conversation) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		c.init(ctx, m.Identity.Identity)
	case *parleypb.PostRequest:
		c.post(ctx, m)
	case *parleypb.GroupRequest:
		c.groupOp(ctx, m)
	case *parleypb.TypingRequest:
		c.typing(ctx, m)
	case *conversationAppended:
		c.appended(ctx, m)
	case *parleypb.Wake:
		c.fanout(ctx)
	case *fanoutRetry:
		c.retrying = false
		c.fanout(ctx)
	case *ownerCheck:
		if !c.deps.Topology.Owns(KindConversation, c.id) {
			c.deps.Log.Info("grain owned by another node now; stopping", slog.String("grain", KindConversation+"/"+c.id))
			ctx.Poison(ctx.Self())
		}
	case *actor.ReceiveTimeout:
		if len(c.pending)+len(c.inflight) == 0 && c.allDelivered() {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopping:
		// Moving to another node (or passivating): posts not answered yet are told to
		// retry; the next activation dedupes any that did commit.
		for _, p := range append(c.inflight, c.pending...) {
			c.fail(ctx, p, "conversation moving; retry")
		}
		c.inflight, c.pending = nil, nil
		c.saveSnapshot(ctx, true)
	case *actor.Stopped:
		c.deps.Grains.remove(KindConversation, c.id, ctx.Self())
	}
}

func (c *Conversation) init(ctx actor.Context, id string) {
	c.id = id
	c.deps.Grains.add(KindConversation, id, ctx.Self())
	c.deps.Topology.checkLater(ctx, KindConversation, id)
	c.byKey = map[string]*post{}
	c.recent = newRecentSent(recentClients)
	c.delivered = map[string]int64{}
	c.sending = map[string]bool{}
	kind, members, _, err := convid.Parse(id)
	if err != nil {
		c.deps.Log.Warn("conversation grain for an id it cannot serve", slog.String("conversation", id))
		c.broken = true
		ctx.Poison(ctx.Self())
		return
	}
	if kind == convid.Direct {
		c.members = members
	} else {
		c.grp = &groupState{joined: map[string]int64{}}
	}
	if err := c.load(); err != nil {
		c.deps.Log.Error("loading conversation", slog.String("conversation", id), slog.Any("error", err))
		c.broken = true
		ctx.Poison(ctx.Self())
		return
	}
	ctx.SetReceiveTimeout(c.deps.Settings.IdleTimeout)
	if c.allDelivered() {
		c.clearOutbox() // a row left behind by a clear that never ran
	}
	c.fanout(ctx)
}

// load restores the state: the snapshot (delivery progress), then the stream's
// version and last message id. Messages past a member's delivered mark are re-driven.
func (c *Conversation) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	st := c.deps.Store
	_, state, err := st.Snapshot(ctx, persistence.ConversationStream(c.id))
	switch {
	case err == nil:
		snap := &parleypb.ConversationSnapshot{}
		if err := proto.Unmarshal(state, snap); err != nil {
			return err
		}
		for m, id := range snap.Delivered {
			c.delivered[m] = id
		}
	case err != persistence.ErrNotFound:
		return err
	}
	if c.version, err = st.ConversationVersion(ctx, c.id); err != nil {
		return err
	}
	if c.committed, err = st.LastMessageID(ctx, c.id); err != nil {
		return err
	}
	c.lastID, c.tailBase = c.committed, c.committed
	if c.grp != nil {
		if err := c.loadGroup(ctx); err != nil {
			return err
		}
	}
	pending, err := st.OutboxPending(ctx, c.id)
	if err != nil {
		return err
	}
	if !pending {
		// No outbox row: every member has everything, whatever the snapshot says.
		for _, m := range c.members {
			c.delivered[m] = max(c.delivered[m], c.committed)
		}
	}
	return nil
}

// reload re-reads the stream's version and last message after another writer moved
// it. The tail is dropped: messages of the other writer are read from the store.
func (c *Conversation) reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	version, err := c.deps.Store.ConversationVersion(ctx, c.id)
	if err != nil {
		return err
	}
	last, err := c.deps.Store.LastMessageID(ctx, c.id)
	if err != nil {
		return err
	}
	c.version, c.committed = version, max(c.committed, last)
	c.lastID = max(c.lastID, c.committed)
	c.tail, c.tailBase = nil, c.committed
	if c.grp != nil {
		return c.loadGroup(ctx)
	}
	return nil
}

func (c *Conversation) post(ctx actor.Context, req *parleypb.PostRequest) {
	if e := c.check(req); e != nil {
		ctx.Respond(&parleypb.PostResponse{Error: e})
		return
	}
	key := req.From + "\x00" + req.ClientId
	if p := c.byKey[key]; p != nil {
		p.waiters = append(p.waiters, ctx.Sender())
		return
	}
	if s, ok := c.recent.get(key); ok {
		ctx.Respond(s)
		return
	}
	p := &post{req: req, waiters: []*actor.PID{ctx.Sender()}}
	c.pending = append(c.pending, p)
	c.byKey[key] = p
	c.flush(ctx)
}

func (c *Conversation) check(req *parleypb.PostRequest) *parleypb.GrainError {
	if c.broken {
		return grainError(parleypb.ErrorReason_UNAVAILABLE, "conversation is restarting; retry")
	}
	if req.ClientId == "" || req.Text == "" {
		return grainError(parleypb.ErrorReason_BAD_REQUEST, "id and text are required")
	}
	if c.grp != nil {
		switch {
		case !c.grp.exists():
			return grainError(parleypb.ErrorReason_NOT_FOUND, "no such group")
		case !c.isMember(req.From):
			return grainError(parleypb.ErrorReason_FORBIDDEN, "not a member of this group")
		}
		return nil
	}
	if req.From == req.To || !c.isMember(req.From) || !c.isMember(req.To) {
		return grainError(parleypb.ErrorReason_FORBIDDEN, "not a member of %s", c.id)
	}
	if c.known {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	exist, err := c.deps.Store.UsersExist(ctx, c.members)
	if err != nil {
		return grainError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
	}
	for _, m := range c.members {
		if !exist[m] {
			return grainError(parleypb.ErrorReason_NOT_FOUND, "user %s does not exist", m)
		}
	}
	c.known = true
	return nil
}

func (c *Conversation) isMember(user string) bool {
	if c.grp != nil {
		_, ok := c.grp.joined[user]
		return ok
	}
	for _, m := range c.members {
		if m == user {
			return true
		}
	}
	return false
}

// flush starts the next append when none is under way: message ids are assigned
// here, in order, each above every id the conversation has seen.
func (c *Conversation) flush(ctx actor.Context) {
	if len(c.inflight) > 0 {
		return
	}
	for len(c.pending) > 0 && c.pending[0].op != nil { // a group change goes alone
		p := c.pending[0]
		c.pending = c.pending[1:]
		event, answer := c.prepare(p.op)
		if event == nil {
			c.answerOp(ctx, p, answer)
			continue
		}
		c.stamp(event)
		p.event, c.inflight = event, []*post{p}
		c.appendAsync(ctx, persistence.ConversationAppend{Conversation: c.id, Expected: c.version, Event: event})
		return
	}
	n := 0
	for n < len(c.pending) && c.pending[n].op == nil {
		n++
	}
	if n == 0 {
		return
	}
	c.inflight, c.pending = c.pending[:n:n], append([]*post(nil), c.pending[n:]...)
	msgs := make([]*parleypb.Message, len(c.inflight))
	for i, p := range c.inflight {
		id := c.deps.IDs.NextAfter(c.lastID)
		c.lastID = id
		p.msg = &parleypb.Message{MessageId: id, Conversation: c.id, From: p.req.From, To: p.req.To,
			Group: p.req.Group, Text: p.req.Text, Ts: ids.UnixMillis(id), ClientId: p.req.ClientId}
		msgs[i] = p.msg
	}
	c.appendAsync(ctx, persistence.ConversationAppend{Conversation: c.id, Expected: c.version, Messages: msgs})
}

func (c *Conversation) appendAsync(ctx actor.Context, a persistence.ConversationAppend) {
	store := c.deps.Store
	background(ctx, c.deps.Settings.RequestTimeout, func(cx context.Context) any {
		res, err := store.AppendConversation(cx, a)
		return &conversationAppended{res: res, err: err}
	})
}

func (c *Conversation) appended(ctx actor.Context, m *conversationAppended) {
	batch := c.inflight
	c.inflight = nil
	if m.err != nil {
		// The stream moved (another activation wrote) or the outcome is unknown:
		// reload and append the batch again after what is stored; a post that did
		// commit is then skipped by its client id and answered with its message.
		c.deps.Log.Warn("append failed; reloading", slog.String("conversation", c.id), slog.Any("error", m.err))
		if c.recovery.failed(m.err, c.reload) {
			c.pending = append(batch, c.pending...)
			c.flush(ctx)
			return
		}
		c.broken = true
		for _, p := range append(batch, c.pending...) {
			c.fail(ctx, p, "not committed; retry")
		}
		c.pending = nil
		ctx.Poison(ctx.Self())
		return
	}
	c.recovery.failures = 0
	c.version = m.res.Version
	inserted := make(map[int64]bool, len(m.res.Inserted))
	for _, id := range m.res.Inserted {
		inserted[id] = true
	}
	for _, p := range batch {
		if p.event != nil {
			c.apply(p.event)
			c.answerOp(ctx, p, c.info())
			continue
		}
		if inserted[p.msg.MessageId] {
			c.tail = append(c.tail, p.msg)
			c.committed = max(c.committed, p.msg.MessageId)
			c.answer(ctx, p, &parleypb.PostResponse{MessageId: p.msg.MessageId, Ts: p.msg.Ts})
			continue
		}
		c.answer(ctx, p, c.repeated(p))
	}
	c.flush(ctx)
	c.fanout(ctx)
	if c.recovery.yield && len(c.inflight) == 0 {
		c.deps.Log.Info("another activation writes this conversation; stopping", slog.String("conversation", c.id))
		ctx.Poison(ctx.Self())
	}
}

// repeated answers a post whose client id the store already had (from an earlier
// activation): with the message committed then.
func (c *Conversation) repeated(p *post) *parleypb.PostResponse {
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	m, err := c.deps.Store.FindByClientID(ctx, c.id, p.req.From, p.req.ClientId)
	if err != nil {
		return &parleypb.PostResponse{Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; retry")}
	}
	return &parleypb.PostResponse{MessageId: m.MessageId, Ts: m.Ts}
}

// fail answers a queued change that was not made: unavailable, retry.
func (c *Conversation) fail(ctx actor.Context, p *post, msg string) {
	e := grainError(parleypb.ErrorReason_UNAVAILABLE, "%s", msg)
	if p.op != nil {
		c.answerOp(ctx, p, &parleypb.GroupResponse{Error: e})
		return
	}
	c.answer(ctx, p, &parleypb.PostResponse{Error: e})
}

func (c *Conversation) answerOp(ctx actor.Context, p *post, r *parleypb.GroupResponse) {
	for _, w := range p.waiters {
		ctx.Send(w, r)
	}
}

func (c *Conversation) answer(ctx actor.Context, p *post, r *parleypb.PostResponse) {
	key := p.req.From + "\x00" + p.req.ClientId
	delete(c.byKey, key)
	if r.Error == nil {
		c.recent.put(key, r)
	}
	for _, w := range p.waiters {
		ctx.Send(w, r)
	}
}

// recentSent remembers the answers to the latest posts by sender and client id.
type recentSent struct {
	byKey map[string]*parleypb.PostResponse
	ring  []string
	next  int
}

func newRecentSent(n int) recentSent {
	return recentSent{byKey: make(map[string]*parleypb.PostResponse, n), ring: make([]string, n)}
}

func (r *recentSent) get(key string) (*parleypb.PostResponse, bool) {
	s, ok := r.byKey[key]
	return s, ok
}

func (r *recentSent) put(key string, s *parleypb.PostResponse) {
	if _, ok := r.byKey[key]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.byKey, old)
	}
	r.ring[r.next] = key
	r.byKey[key] = s
	r.next = (r.next + 1) % len(r.ring)
}
