package actors

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// AdminName is the name of every node's admin actor: the admin endpoint of any
// node asks each member's admin actor about that member (docs/ADMIN.md).
const AdminName = "parley-admin"

// NodeInfo is what a node's admin actor says of the node besides its registries.
type NodeInfo struct {
	NodeID      int
	HTTP, Admin string
	StartedAt   time.Time
	Version     string
}

// adminActor answers from this node's registries only: it never activates a grain
// and holds no state, so a request that times out and is re-sent does no harm.
type adminActor struct {
	deps *Deps
	info NodeInfo
}

// StartAdmin spawns this node's admin actor.
func StartAdmin(d *Deps, info NodeInfo) error {
	props := actor.PropsFromProducer(func() actor.Actor { return &adminActor{deps: d, info: info} })
	_, err := d.Cluster.ActorSystem.Root.SpawnNamed(props, AdminName)
	return err
}

func (a *adminActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *parleypb.AdminNodeRequest:
		ctx.Respond(a.node(m))
	case *parleypb.AdminFindRequest:
		r := &parleypb.AdminFindResponse{NodeId: int32(a.info.NodeID)}
		if g, ok := a.deps.Grains.find(m.Kind, m.Id); ok {
			r.Grain = g
		}
		if m.Conns && m.Kind == KindUser {
			r.Conns = a.conns(ctx, m.Id, false)
		}
		ctx.Respond(r)
	case *parleypb.AdminConnsRequest:
		ctx.Respond(&parleypb.AdminConnsResponse{NodeId: int32(a.info.NodeID), Conns: a.conns(ctx, m.User, m.Close)})
	case *parleypb.AdminPassivateRequest:
		g, ok := a.deps.Grains.find(m.Kind, m.Id)
		if ok {
			ctx.Poison(g.Pid) // Stopping flushes or fails what is queued, as on idle passivation
		}
		ctx.Respond(&parleypb.AdminPassivateResponse{Passivated: ok})
	}
}

// conns lists this node's connections of user, closing them (code 4001) with close.
func (a *adminActor) conns(ctx actor.Context, user string, close bool) []*parleypb.AdminConn {
	var out []*parleypb.AdminConn
	for _, c := range a.deps.Topology.connsOf(user) {
		out = append(out, &parleypb.AdminConn{Device: c.device, Pid: c.pid, Since: c.since})
		if close {
			ctx.Send(c.pid, adminDisconnect)
		}
	}
	return out
}

func (a *adminActor) node(m *parleypb.AdminNodeRequest) *parleypb.AdminNodeResponse {
	r := &parleypb.AdminNodeResponse{
		NodeId: int32(a.info.NodeID), Http: a.info.HTTP,
		Admin: a.info.Admin, StartedAt: a.info.StartedAt.UnixMilli(), Version: a.info.Version,
		Grains:      map[string]int32{KindUser: int32(a.deps.Grains.Count(KindUser)), KindConversation: int32(a.deps.Grains.Count(KindConversation))},
		Connections: int32(a.deps.Topology.connCount()),
	}
	if m.List {
		r.List, r.Truncated = a.deps.Grains.list(m.Kind, int(m.Limit))
	}
	return r
}

// adminDisconnect tells a connection (on this node) that an operator disconnects
// its user.
type adminDisconnectMsg struct{}

var adminDisconnect = &adminDisconnectMsg{}

// adminUserState is the user grain's answer to AdminStateRequest.
func (u *User) adminState() *parleypb.AdminUserState {
	s := &parleypb.AdminUserState{Conns: append([]*actor.PID(nil), u.conns...), Status: u.statusNow().String(),
		LastSeen: u.lastSeen, Leaving: u.p.leaving > 0}
	if u.p.peers != nil {
		s.Watchers = int32(len(u.p.peers.watchers))
	}
	return s
}

// adminState is the conversation grain's answer to AdminStateRequest.
func (c *Conversation) adminState() *parleypb.AdminConversationState {
	s := &parleypb.AdminConversationState{Version: c.w.version, LastMessageId: c.lastID,
		Pending: int32(len(c.w.pending) + len(c.w.inflight) + len(c.starting))}
	switch m := c.members.(type) {
	case *direct:
		s.Type, s.Members = convid.Direct, append([]string(nil), m.users...)
	case *channel:
		s.Type, s.MemberCount = convid.Channel, m.info.MemberCount
		s.LastMessageId = max(s.LastMessageId, m.lastMsg)
	case *group:
		s.Type = convid.Group
		for u := range m.joined {
			s.Members = append(s.Members, u)
		}
		sort.Strings(s.Members)
	}
	if s.MemberCount == 0 {
		s.MemberCount = int64(len(s.Members))
	}
	return s
}

// mailbox counts what waits in one actor's mailbox: Proto.Actor's mailbox knows
// it (UserMessageCount) but does not say which actor it belongs to, so this
// wrapper records itself under the actor's PID when the mailbox is bound to it.
type mailbox struct {
	actor.Mailbox
	boxes *mailboxIndex
}

func (m mailbox) RegisterHandlers(inv actor.MessageInvoker, d actor.Dispatcher) {
	if c, ok := inv.(interface{ Self() *actor.PID }); ok && c.Self() != nil {
		m.boxes.put(c.Self().Id, m.Mailbox)
	}
	m.Mailbox.RegisterHandlers(inv, d)
}

// mailboxIndex holds the mailboxes of this node's grains, by PID id.
type mailboxIndex struct {
	mu sync.Mutex
	m  map[string]actor.Mailbox
}

func (b *mailboxIndex) producer() actor.MailboxProducer {
	unbounded := actor.Unbounded()
	return func() actor.Mailbox { return mailbox{Mailbox: unbounded(), boxes: b} }
}

func (b *mailboxIndex) put(id string, m actor.Mailbox) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[string]actor.Mailbox{}
	}
	b.m[id] = m
	b.mu.Unlock()
}

func (b *mailboxIndex) drop(id string) {
	b.mu.Lock()
	delete(b.m, id)
	b.mu.Unlock()
}

// depth is the number of user messages waiting for the actor (-1: unknown).
func (b *mailboxIndex) depth(id string) int {
	b.mu.Lock()
	m, ok := b.m[id]
	b.mu.Unlock()
	if !ok {
		return -1
	}
	return m.UserMessageCount()
}

// AdminAnswer is one member's answer to an admin request (Err set if it did not
// answer in time).
type AdminAnswer struct {
	Member Member
	Resp   any
	Err    error
}

// AdminAsk sends msg to every member's admin actor at once and returns their
// answers in the members' order. Before the first topology event the node asks
// itself only.
func AdminAsk(d *Deps, timeout time.Duration, msg any) []AdminAnswer {
	members := d.Topology.Members()
	if len(members) == 0 {
		sys := d.Cluster.ActorSystem
		members = []Member{{ID: sys.ID, Address: sys.Address()}}
	}
	out := make([]AdminAnswer, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].Member = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := d.Cluster.ActorSystem.Root.RequestFuture(actor.NewPID(m.Address, AdminName), msg, timeout)
			out[i].Resp, out[i].Err = f.Result()
		}()
	}
	wg.Wait()
	return out
}

// AdminState asks the grain at pid for its live state (*AdminUserState or
// *AdminConversationState). A PID names one activation: this never activates a
// grain, and times out if that activation has stopped meanwhile. The request has
// no sender (the answer goes to reply_to), so that it reaches the grain bare and
// does not reset its idle timer.
func AdminState(d *Deps, pid *actor.PID, timeout time.Duration) (any, error) {
	return askBare(d.Cluster.ActorSystem, pid, timeout)
}

func askBare(sys *actor.ActorSystem, pid *actor.PID, timeout time.Duration) (any, error) {
	f := actor.NewFuture(sys, timeout)
	sys.Root.Send(pid, &parleypb.AdminStateRequest{ReplyTo: f.PID()})
	return f.Result()
}

// StoredConversation is what the store holds of a conversation, in the shape of a
// grain's live state, for one that no node holds: persistence.ErrNotFound if conv
// is no conversation id or nothing was ever written to it.
func StoredConversation(ctx context.Context, d *Deps, conv string) (*parleypb.AdminConversationState, error) {
	members, err := newMembership(conv)
	if err != nil {
		return nil, persistence.ErrNotFound
	}
	version, last, err := d.Store.ConversationHead(ctx, conv)
	if err != nil {
		return nil, err
	}
	if err := members.load(ctx, d, conv); err != nil {
		return nil, err
	}
	if ch, ok := members.(*channel); ok && !ch.exists() || version == 0 {
		return nil, persistence.ErrNotFound
	}
	c := &Conversation{members: members, lastID: max(last, members.lastID())}
	c.w.version = version
	return c.adminState(), nil
}
