package actors

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Conversation is the grain that is the single writer of one conversation, direct or
// group (its membership decides who takes part): it dedupes client ids, assigns
// message ids in order, and appends each batch to the store, which writes the
// messages into every member's sync queue in the same commit. Only then does it
// answer the senders, and push the new entries to the members' user grains for
// their live connections.
type Conversation struct {
	deps    *Deps
	id      string
	members membership
	w       writer[*change]
	lastID  int64              // the highest id assigned here or found in the stream
	byKey   map[string]*change // posts queued or in flight, by sender and client id
	recent  dedupe             // the answers of the latest posts

	// A direct conversation's first post is charged to its sender's budget of
	// conversations started: until the user grain answers, posts wait here.
	started  bool
	starting []*change
	typedAt  map[string]int64 // member -> when its last typing notice went out (Unix ns)
}

// change is a queued post (post, then msg once it has its id) or group operation
// (op, then event).
type change struct {
	post     *parleypb.PostRequest
	msg      *parleypb.Message
	op       *parleypb.GroupRequest
	event    *parleypb.GroupEvent
	chOp     *parleypb.ChannelRequest
	chEvent  *parleypb.ChannelEvent
	mentions []string // channel members the post mentions: its append's recipients (it goes alone)
	waiters  []*actor.PID
	received int64 // when it reached the grain (Unix ns)
}

// isOp reports whether the change is a membership change (which is appended alone).
func (p *change) isOp() bool { return p.op != nil || p.chOp != nil }

type conversationAppended struct {
	res persistence.ConversationAppended
	err error
	at  int64 // when the commit was done (Unix ns)
}

// Receive handles one message.
func (c *Conversation) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		c.init(ctx, m.Identity.Identity)
	case *parleypb.PostRequest:
		c.post(ctx, m)
	case *parleypb.GroupRequest:
		c.groupOp(ctx, m)
	case *parleypb.ChannelRequest:
		c.channelOp(ctx, m)
	case *parleypb.TypingRequest:
		c.typing(ctx, m)
	case *parleypb.AdminStateRequest:
		ctx.Send(m.ReplyTo, c.adminState())
	case *conversationAppended:
		c.appended(ctx, m)
	case *membersChanged:
		if !c.deps.Topology.Owns(KindConversation, c.id) {
			c.deps.Log.Info("grain owned by another node now; stopping", slog.String("grain", KindConversation+"/"+c.id))
			ctx.Poison(ctx.Self())
		}
	case *actor.ReceiveTimeout:
		if c.w.idle() {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopping:
		// Moving to another node (or passivating): changes not answered yet are told
		// to retry; the next activation dedupes any post that did commit.
		for _, p := range append(c.w.drain(nil), c.starting...) {
			c.fail(ctx, p, "conversation moving; retry")
		}
		c.starting = nil
	case *actor.Stopped:
		c.deps.Grains.remove(KindConversation, c.id, ctx.Self())
	}
}

func (c *Conversation) init(ctx actor.Context, id string) {
	c.id = id
	c.deps.Grains.add(KindConversation, id, ctx.Self())
	c.deps.Topology.checkLater(ctx, KindConversation, id)
	c.byKey = map[string]*change{}
	c.recent = dedupe{max: c.deps.Settings.DedupeCache}
	members, err := newMembership(id)
	if err != nil {
		c.deps.Log.Warn("conversation grain for an id it cannot serve", slog.String("conversation", clip(id)))
		c.w.broken = true
		ctx.Poison(ctx.Self())
		return
	}
	c.members = members
	if err := c.reload(); err != nil {
		c.deps.Log.Error("loading conversation", slog.String("conversation", id), slog.Any("error", err))
		c.w.broken = true
		ctx.Poison(ctx.Self())
		return
	}
	ctx.SetReceiveTimeout(c.deps.Settings.IdleTimeout)
}

// reload reads the stream's version and highest id, and the membership: at
// activation, and after another writer moved the stream.
func (c *Conversation) reload() error {
	ctx, cancel := c.deps.timeout()
	defer cancel()
	version, last, err := c.deps.Store.ConversationHead(ctx, c.id)
	if err != nil {
		return err
	}
	if err := c.members.load(ctx, c.deps, c.id); err != nil {
		return err
	}
	c.w.version = version
	c.lastID = max(c.lastID, last, c.members.lastID())
	return nil
}

func (c *Conversation) post(ctx actor.Context, req *parleypb.PostRequest) {
	now := metrics.Now()
	c.deps.Metrics.Posted(1)
	c.deps.Metrics.Since(metrics.StageGrain, req.DecodedAt)
	if e := c.check(req); e != nil {
		ctx.Respond(&parleypb.PostResponse{Error: e})
		c.stopIfEmpty(ctx)
		return
	}
	key := clientKey(req)
	if p := c.byKey[key]; p != nil {
		p.waiters = append(p.waiters, ctx.Sender())
		return
	}
	if s, ok := c.recent.get(key); ok {
		ctx.Respond(s)
		return
	}
	p := &change{post: req, waiters: []*actor.PID{ctx.Sender()}, received: now}
	if ch, ok := c.members.(*channel); ok {
		p.mentions = ch.mentions(c.deps, req.From, req.Text)
	}
	c.byKey[key] = p
	if c.mustStart() {
		c.start(ctx, p)
		return
	}
	c.w.add(p)
	c.flush(ctx)
}

// mustStart reports whether a post starts a direct conversation, which spends one of
// its sender's conversations started (Budgets.Conversations): its stream is empty.
func (c *Conversation) mustStart() bool {
	if c.started || c.deps.Settings.Budgets.Conversations.Burst <= 0 {
		return false
	}
	if _, direct := c.members.(*direct); !direct || c.w.version != 0 {
		c.started = true
		return false
	}
	return true
}

// start holds p until its sender's user grain has spent the budget: then the posts
// held go to the writer, or are refused with its rate_limited.
func (c *Conversation) start(ctx actor.Context, p *change) {
	c.starting = append(c.starting, p)
	if len(c.starting) > 1 {
		return // asked already
	}
	ask(c.deps, ctx, p.post.From, KindUser, &parleypb.SpendRequest{Kind: parleypb.SpendRequest_CONVERSATION},
		func(_ *parleypb.SpendResponse, err error) {
			held := c.starting
			c.starting = nil
			if err != nil {
				var e *parleypb.GrainError
				if !errors.As(err, &e) || e == nil {
					e = parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "conversation unavailable; retry")
				}
				for _, p := range held {
					c.answer(ctx, p, &parleypb.PostResponse{Error: e})
				}
				c.stopIfEmpty(ctx)
				return
			}
			c.started = true
			for _, p := range held {
				c.w.add(p)
			}
			c.flush(ctx)
		})
}

func clientKey(req *parleypb.PostRequest) string { return req.From + "\x00" + req.ClientId }

func (c *Conversation) check(req *parleypb.PostRequest) *parleypb.GrainError {
	switch {
	case c.w.broken:
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "conversation is restarting; retry")
	case req.ClientId == "" || req.Text == "":
		return parleypb.Errorf(parleypb.ErrorReason_BAD_REQUEST, "id and text are required")
	}
	if d, ok := c.members.(*direct); ok {
		if peer, member := d.peer(req.From); !member || req.To != peer {
			return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of %s", c.id)
		}
	}
	return c.members.mayPost(c.deps, req.From)
}

// flush starts the next append when none is under way. A group change goes alone;
// otherwise every post waiting is one batch, and message ids are assigned here, in
// order, each above every id the conversation has seen.
func (c *Conversation) flush(ctx actor.Context) {
	if c.w.busy() || c.w.broken {
		return
	}
	for len(c.w.pending) > 0 && c.w.pending[0].chOp != nil {
		p := c.w.pending[0]
		event, answer := c.members.(*channel).prepare(c.deps, shortID(c.id), p.chOp)
		if event == nil {
			c.answerChannel(ctx, c.w.pop(), answer)
			continue
		}
		event.EventId = c.deps.IDs.NextAfter(c.lastID)
		event.Ts = ids.UnixMillis(event.EventId)
		c.lastID, p.chEvent = event.EventId, event
		c.w.take(1)
		c.appendAsync(ctx, persistence.ConversationAppend{Conversation: c.id, Expected: c.w.version, ChannelEvent: event})
		return
	}
	for len(c.w.pending) > 0 && c.w.pending[0].op != nil {
		p := c.w.pending[0]
		event, answer := c.members.(*group).prepare(c.deps, shortID(c.id), p.op)
		if event == nil {
			c.answerOp(ctx, c.w.pop(), answer)
			continue
		}
		stamp(c.deps.IDs, event, c.lastID)
		c.lastID, p.event = event.EventId, event
		c.w.take(1)
		c.appendAsync(ctx, persistence.ConversationAppend{Conversation: c.id, Expected: c.w.version, Event: event})
		return
	}
	n := batchLen(c.w.pending)
	if n == 0 {
		c.stopIfEmpty(ctx) // every change was refused, or nothing was asked
		return
	}
	batch := c.w.take(n)
	msgs := make([]*parleypb.Message, len(batch))
	for i, p := range batch {
		id := c.deps.IDs.NextAfter(c.lastID)
		c.lastID = id
		r := p.post
		p.msg = &parleypb.Message{MessageId: id, Conversation: c.id, From: r.From, To: r.To,
			Group: r.Group, Channel: r.Channel, Text: r.Text, Ts: ids.UnixMillis(id), ClientId: r.ClientId}
		msgs[i] = p.msg
	}
	recipients := slices.Clone(c.members.recipients())
	if len(batch) == 1 && len(batch[0].mentions) > 0 {
		recipients = batch[0].mentions
	}
	c.appendAsync(ctx, persistence.ConversationAppend{Conversation: c.id, Expected: c.w.version, Messages: msgs,
		Recipients: recipients})
}

// Bounds of one append: its statement, and the pushes it makes (a remote message
// batch must stay well under gRPC's 4 MiB), stay small however many posts wait.
const (
	maxBatch      = 256       // posts, at most
	maxBatchBytes = 256 << 10 // text bytes, at most (one post always goes)
)

// batchLen is how many of the posts at the head of pending the next append takes.
// A channel post that mentions members goes alone: its recipients are its own.
func batchLen(pending []*change) int {
	if len(pending) > 0 && len(pending[0].mentions) > 0 {
		return 1
	}
	n, size := 0, 0
	for n < len(pending) && !pending[n].isOp() && len(pending[n].mentions) == 0 && n < maxBatch {
		size += len(pending[n].post.Text) + 64
		if size > maxBatchBytes && n > 0 {
			break
		}
		n++
	}
	return n
}

// appendAsync submits a to the group commit; its outcome comes back as a message.
func (c *Conversation) appendAsync(ctx actor.Context, a persistence.ConversationAppend) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	c.deps.Store.AppendConversationAsync(a, func(res persistence.ConversationAppended, err error) {
		root.Send(self, &conversationAppended{res: res, err: err, at: metrics.Now()})
	})
}

func (c *Conversation) appended(ctx actor.Context, m *conversationAppended) {
	if m.err != nil {
		c.deps.Log.Warn("append failed; reloading", slog.String("conversation", c.id), slog.Any("error", m.err))
		retry, dropped := c.w.failed(m.err, c.reload)
		if retry {
			c.flush(ctx)
			return
		}
		for _, p := range dropped {
			c.fail(ctx, p, "not committed; retry")
		}
		ctx.Poison(ctx.Self())
		return
	}
	batch := c.w.succeeded(m.res.Version)
	inserted := make(map[int64]bool, len(m.res.Inserted))
	for _, id := range m.res.Inserted {
		inserted[id] = true
	}
	var fresh []*change
	for _, p := range batch {
		switch {
		case p.event != nil:
			g := c.members.(*group)
			g.apply(p.event)
			c.answerOp(ctx, p, g.info(shortID(c.id)))
		case p.chEvent != nil:
			c.channelApplied(ctx, p)
		case inserted[p.msg.MessageId]:
			fresh = append(fresh, p)
			c.deps.Metrics.Since(metrics.StageCommit, p.received)
			c.answer(ctx, p, &parleypb.PostResponse{MessageId: p.msg.MessageId, Ts: p.msg.Ts, CommittedAt: m.at})
		default:
			c.answer(ctx, p, c.repeated(p))
		}
	}
	c.deps.Metrics.Committed(len(fresh))
	if ch, ok := c.members.(*channel); ok {
		c.publish(ctx, ch, fresh, m.at)
	}
	c.push(ctx, fresh, m.res.LastSeq, m.at) // a channel's: only to the members a post mentions
	c.flush(ctx)
	if c.w.yielding() {
		c.deps.Log.Info("another activation writes this conversation; stopping", slog.String("conversation", c.id))
		ctx.Poison(ctx.Self())
	}
}

// push sends the messages just committed to each recipient's user grain, with the
// seqs they took in its queue, for its live connections. It is best effort: the
// messages are in the queues already, and a connection that misses a push reads the
// gap from the store when the next one comes, or at its next sync.
func (c *Conversation) push(ctx actor.Context, fresh []*change, lastSeq map[string]uint64, committed int64) {
	if len(fresh) == 0 || c.deps.Settings.HoldDelivery {
		return
	}
	msgs, decoded := make([]*parleypb.Message, len(fresh)), make([]int64, len(fresh))
	for i, p := range fresh {
		msgs[i], decoded[i] = p.msg, p.post.DecodedAt
	}
	n := uint64(len(msgs))
	for user, last := range lastSeq {
		c.deps.tell(ctx, user, KindUser, &parleypb.Deliver{Messages: msgs, FirstSeq: last - n + 1,
			CommittedAt: committed, DecodedAt: decoded})
	}
}

// repeated answers a post whose client id the store already had (from an earlier
// activation): with the message committed then.
func (c *Conversation) repeated(p *change) *parleypb.PostResponse {
	ctx, cancel := c.deps.timeout()
	defer cancel()
	m, err := c.deps.Store.FindByClientID(ctx, c.id, p.post.From, p.post.ClientId)
	if err != nil {
		return &parleypb.PostResponse{Error: parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; retry")}
	}
	return &parleypb.PostResponse{MessageId: m.MessageId, Ts: m.Ts}
}

// fail answers a queued change that was not made: unavailable, retry.
func (c *Conversation) fail(ctx actor.Context, p *change, msg string) {
	e := parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "%s", msg)
	if p.chOp != nil {
		c.answerChannel(ctx, p, &parleypb.ChannelResponse{Error: e})
		return
	}
	if p.op != nil {
		c.answerOp(ctx, p, &parleypb.GroupResponse{Error: e})
		return
	}
	c.answer(ctx, p, &parleypb.PostResponse{Error: e})
}

func (c *Conversation) answerOp(ctx actor.Context, p *change, r *parleypb.GroupResponse) {
	for _, w := range p.waiters {
		ctx.Send(w, r)
	}
}

func (c *Conversation) answer(ctx actor.Context, p *change, r *parleypb.PostResponse) {
	key := clientKey(p.post)
	delete(c.byKey, key)
	if r.Error == nil {
		c.recent.put(key, r)
	}
	for _, w := range p.waiters {
		ctx.Send(w, r)
	}
}

// groupOp answers reads at once and queues changes, which are checked when they
// reach the head of the queue (after earlier appends, and again after a reload).
func (c *Conversation) groupOp(ctx actor.Context, req *parleypb.GroupRequest) {
	g, ok := c.members.(*group)
	switch {
	case !ok:
		ctx.Respond(groupError(parleypb.ErrorReason_BAD_REQUEST, "not a group"))
	case c.w.broken:
		ctx.Respond(groupError(parleypb.ErrorReason_UNAVAILABLE, "group is restarting; retry"))
	case req.Op == parleypb.GroupRequest_GET || req.Op == parleypb.GroupRequest_MEMBERSHIP:
		ctx.Respond(g.read(shortID(c.id), req))
		c.stopIfEmpty(ctx)
	case req.Op == parleypb.GroupRequest_CREATE || req.Op == parleypb.GroupRequest_ADD_MEMBER ||
		req.Op == parleypb.GroupRequest_REMOVE_MEMBER:
		c.w.add(&change{op: req, waiters: []*actor.PID{ctx.Sender()}})
		c.flush(ctx)
	default:
		ctx.Respond(groupError(parleypb.ErrorReason_BAD_REQUEST, "unknown group operation"))
	}
}

// typing forwards a typing notice to the other members (their user grains push it
// to live connections); nothing is stored.
func (c *Conversation) typing(ctx actor.Context, req *parleypb.TypingRequest) {
	if c.members == nil || !c.members.isMember(req.From) {
		c.stopIfEmpty(ctx)
		return
	}
	if d, ok := c.members.(*direct); ok {
		if d.exist(c.deps) != nil {
			c.stopIfEmpty(ctx)
			return // no such user: nobody to tell
		}
	}
	if every := c.deps.Settings.Budgets.TypingInterval; every > 0 {
		now := time.Now().UnixNano()
		if last, ok := c.typedAt[req.From]; ok && now-last < int64(every) {
			return // coalesced: the members were told moments ago
		}
		if c.typedAt == nil {
			c.typedAt = map[string]int64{} // at most one entry per member
		}
		c.typedAt[req.From] = now
	}
	n := &parleypb.Notify{Typing: &parleypb.TypingNotice{Conversation: c.id, From: req.From}}
	for _, m := range c.members.recipients() {
		if m != req.From {
			c.deps.tell(ctx, m, KindUser, n)
		}
	}
}

// stopIfEmpty passivates the grain at once when the conversation does not exist (a
// group never created, a DM whose peer is no account, or that nobody may use),
// its stream is empty and it holds no write: a name that names nothing keeps no
// memory for the idle timeout. It is called after each refusal.
func (c *Conversation) stopIfEmpty(ctx actor.Context) {
	if c.w.version != 0 || !c.w.idle() || len(c.starting) > 0 {
		return
	}
	switch m := c.members.(type) {
	case *group:
		if m.exists() {
			return
		}
	case *direct:
		if m.known {
			return
		}
	case *channel:
		if m.exists() {
			return
		}
	}
	ctx.Poison(ctx.Self())
}

// dedupe remembers the answers to the latest posts by sender and client id, so that
// a repeat is answered without a store read. It grows with use, up to max entries
// (the oldest go first); the store's unique index stays the truth.
type dedupe struct {
	byKey map[string]*parleypb.PostResponse
	ring  []string
	next  int
	max   int
}

func (r *dedupe) get(key string) (*parleypb.PostResponse, bool) {
	s, ok := r.byKey[key]
	return s, ok
}

func (r *dedupe) put(key string, s *parleypb.PostResponse) {
	if r.max <= 0 {
		return
	}
	if r.byKey == nil {
		r.byKey = map[string]*parleypb.PostResponse{}
	}
	if _, ok := r.byKey[key]; ok {
		return
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, key)
	} else {
		delete(r.byKey, r.ring[r.next])
		r.ring[r.next] = key
		r.next = (r.next + 1) % r.max
	}
	r.byKey[key] = s
}

// channelOp answers reads at once and queues changes, as groupOp does for groups.
func (c *Conversation) channelOp(ctx actor.Context, req *parleypb.ChannelRequest) {
	ch, ok := c.members.(*channel)
	switch {
	case !ok:
		ctx.Respond(channelError(parleypb.ErrorReason_BAD_REQUEST, "not a channel"))
	case c.w.broken:
		ctx.Respond(channelError(parleypb.ErrorReason_UNAVAILABLE, "channel is restarting; retry"))
	case req.Op == parleypb.ChannelRequest_GET:
		ctx.Respond(ch.read(c.deps, shortID(c.id), req.By))
		c.stopIfEmpty(ctx)
	case req.Op >= parleypb.ChannelRequest_CREATE && req.Op <= parleypb.ChannelRequest_SET_ADMIN:
		c.w.add(&change{chOp: req, waiters: []*actor.PID{ctx.Sender()}})
		c.flush(ctx)
	default:
		ctx.Respond(channelError(parleypb.ErrorReason_BAD_REQUEST, "unknown channel operation"))
	}
}

func (c *Conversation) answerChannel(ctx actor.Context, p *change, r *parleypb.ChannelResponse) {
	for _, w := range p.waiters {
		ctx.Send(w, r)
	}
}

// channelApplied applies a committed channel event, answers it, and tells every
// node's relay of the members it added or removed, so that their live feeds follow
// at once (in order with the publishes after it).
func (c *Conversation) channelApplied(ctx actor.Context, p *change) {
	ch := c.members.(*channel)
	e := p.chEvent
	count := int64(-1)
	if e.Kind == parleypb.ChannelEvent_MEMBERS_ADDED || e.Kind == parleypb.ChannelEvent_MEMBERS_REMOVED {
		cx, cancel := c.deps.timeout()
		if info, err := c.deps.Store.Channel(cx, c.id); err == nil {
			count = info.MemberCount
		}
		cancel()
	}
	ch.apply(e, count)
	c.answerChannel(ctx, p, ch.answer(shortID(c.id)))
	var m *parleypb.ChannelMembers
	switch e.Kind {
	case parleypb.ChannelEvent_CHANNEL_CREATED:
		m = &parleypb.ChannelMembers{Channel: c.id, Added: []string{e.User}}
	case parleypb.ChannelEvent_MEMBERS_ADDED:
		m = &parleypb.ChannelMembers{Channel: c.id, Added: e.Users}
	case parleypb.ChannelEvent_MEMBERS_REMOVED:
		m = &parleypb.ChannelMembers{Channel: c.id, Removed: e.Users}
	default:
		return
	}
	c.toRelays(ctx, m)
}

// publish sends the messages just committed to every node's channel relay, once
// per node, each message with the id of the one before it in the channel (prev).
// It is best effort: the messages are stored, and a member that misses one finds
// the gap by prev, or by its channels' last ids when it reconnects.
func (c *Conversation) publish(ctx actor.Context, ch *channel, fresh []*change, committed int64) {
	if len(fresh) == 0 {
		return
	}
	msgs := make([]*parleypb.Message, len(fresh))
	for i, p := range fresh {
		m := proto.Clone(p.msg).(*parleypb.Message)
		m.Prev, ch.lastMsg = ch.lastMsg, m.MessageId
		msgs[i] = m
	}
	if c.deps.Settings.HoldDelivery {
		return
	}
	c.toRelays(ctx, &parleypb.ChannelPublish{Channel: c.id, Messages: msgs, CommittedAt: committed})
}

// toRelays sends m to the channel relay of every member of the cluster (this node
// included).
func (c *Conversation) toRelays(ctx actor.Context, m proto.Message) {
	members := c.deps.Topology.Members()
	if len(members) == 0 {
		ctx.Send(actor.NewPID(ctx.ActorSystem().Address(), ChannelRelayName), m)
		return
	}
	for _, mb := range members {
		ctx.Send(actor.NewPID(mb.Address, ChannelRelayName), m)
	}
}
