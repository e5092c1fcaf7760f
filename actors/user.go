package actors

import (
	"context"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// User is the grain of one user: the single writer of the user's sync queue (it
// assigns seq), the keeper of device cursors and of the user's live connections.
type User struct {
	deps    *Deps
	id      string
	broken  bool
	seq     uint64            // last seq of the sync queue
	cursors map[string]uint64 // device -> last seq it durably received
	conns   map[string]conn   // by PID string

	recovery recovery
	queue    []*enqueue // waiting for the next append
	inflight []*enqueue // in the append under way
}

type conn struct {
	pid    *actor.PID
	device string
}

type enqueue struct {
	req    *parleypb.EnqueueRequest
	sender *actor.PID
}

type userAppended struct {
	res persistence.UserAppended
	err error
}

// Receive handles one message.
func (u *User) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		u.init(ctx, m.Identity.Identity)
	case *parleypb.EnqueueRequest:
		u.enqueue(ctx, m)
	case *userAppended:
		u.appended(ctx, m)
	case *parleypb.AttachRequest:
		u.attach(ctx, m)
	case *parleypb.DetachRequest:
		u.detach(m.Conn)
	case *actor.Terminated:
		u.detach(m.Who)
	case *parleypb.AckRequest:
		u.ack(m)
	case *parleypb.Notify:
		for _, c := range u.conns { // transient: only to live connections
			ctx.Send(c.pid, m)
		}
	case *parleypb.StatusRequest:
		ctx.Respond(u.status())
	case *ownerCheck:
		if !u.deps.Topology.Owns(KindUser, u.id) {
			u.deps.Log.Info("grain owned by another node now; stopping", slog.String("grain", KindUser+"/"+u.id))
			ctx.Poison(ctx.Self())
		}
	case *actor.ReceiveTimeout:
		if len(u.conns) == 0 && len(u.queue)+len(u.inflight) == 0 {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopping:
		// Moving to another node (or failing): connections attach to the next
		// activation, and enqueues not answered yet are retried by their senders.
		for _, c := range u.conns {
			ctx.Send(c.pid, &parleypb.Reattach{})
		}
		for _, e := range append(u.inflight, u.queue...) {
			ctx.Send(e.sender, &parleypb.EnqueueResponse{Conversation: e.req.Conversation,
				Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "user grain moving; retry")})
		}
		u.inflight, u.queue = nil, nil
	case *actor.Stopped:
		u.deps.Grains.remove(KindUser, u.id, ctx.Self())
	}
}

func (u *User) init(ctx actor.Context, id string) {
	u.id = id
	u.deps.Grains.add(KindUser, id, ctx.Self())
	u.deps.Topology.checkLater(ctx, KindUser, id)
	u.conns = map[string]conn{}
	cx, cancel := context.WithTimeout(context.Background(), u.deps.Settings.RequestTimeout)
	defer cancel()
	var err error
	if u.seq, err = u.deps.Store.UserVersion(cx, id); err == nil {
		u.cursors, err = u.deps.Store.Cursors(cx, id)
	}
	if err != nil {
		u.deps.Log.Error("loading user", slog.String("user_id", id), slog.Any("error", err))
		u.broken = true
		ctx.Poison(ctx.Self())
		return
	}
	ctx.SetReceiveTimeout(u.deps.Settings.IdleTimeout)
}

// reload re-reads the queue's last seq after another writer moved it. Live
// connections fill the entries they missed from the store on the next delivery.
func (u *User) reload() error {
	cx, cancel := context.WithTimeout(context.Background(), u.deps.Settings.RequestTimeout)
	defer cancel()
	seq, err := u.deps.Store.UserVersion(cx, u.id)
	if err == nil {
		u.seq = seq
	}
	return err
}

func (u *User) enqueue(ctx actor.Context, req *parleypb.EnqueueRequest) {
	if u.broken {
		ctx.Respond(&parleypb.EnqueueResponse{Conversation: req.Conversation,
			Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "user grain restarting")})
		return
	}
	u.queue = append(u.queue, &enqueue{req: req, sender: ctx.Sender()})
	u.flush(ctx)
}

// flush appends everything waiting as one batch, when no append is under way.
func (u *User) flush(ctx actor.Context) {
	if len(u.inflight) > 0 || len(u.queue) == 0 {
		return
	}
	u.inflight, u.queue = u.queue, nil
	seen := map[int64]bool{}
	var msgs []*parleypb.Message
	for _, e := range u.inflight {
		for _, m := range e.req.Messages {
			if !seen[m.MessageId] {
				seen[m.MessageId] = true
				msgs = append(msgs, m)
			}
		}
	}
	a := persistence.UserAppend{User: u.id, Expected: u.seq, Messages: msgs}
	store := u.deps.Store
	background(ctx, u.deps.Settings.RequestTimeout, func(cx context.Context) any {
		res, err := store.AppendUser(cx, a)
		return &userAppended{res: res, err: err}
	})
}

func (u *User) appended(ctx actor.Context, m *userAppended) {
	batch := u.inflight
	u.inflight = nil
	if m.err != nil {
		// Another activation moved the queue, or the outcome is unknown: reload the
		// queue's end and append again (entries already queued are skipped by id).
		u.deps.Log.Warn("queue append failed; reloading", slog.String("user_id", u.id), slog.Any("error", m.err))
		if u.recovery.failed(m.err, u.reload) {
			u.queue = append(batch, u.queue...)
			u.flush(ctx)
			return
		}
		u.broken = true
		for _, e := range append(batch, u.queue...) {
			ctx.Send(e.sender, &parleypb.EnqueueResponse{Conversation: e.req.Conversation,
				Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "not queued; retry")})
		}
		u.queue = nil
		ctx.Poison(ctx.Self())
		return
	}
	u.recovery.failures = 0
	u.seq = m.res.Version
	for rest := m.res.Entries; len(rest) > 0; {
		chunk := firstChunk(rest)
		rest = rest[len(chunk):]
		d := &parleypb.Deliver{Messages: chunk}
		for _, c := range u.conns {
			ctx.Send(c.pid, d)
		}
	}
	for _, e := range batch {
		var upTo int64
		for _, msg := range e.req.Messages {
			upTo = max(upTo, msg.MessageId)
		}
		ctx.Send(e.sender, &parleypb.EnqueueResponse{Conversation: e.req.Conversation, UpTo: upTo})
	}
	u.flush(ctx)
	if u.recovery.yield && len(u.inflight) == 0 {
		// Stopping sends the connections Reattach: they attach to the other activation.
		u.deps.Log.Info("another activation writes this queue; stopping", slog.String("user_id", u.id))
		ctx.Poison(ctx.Self())
	}
}

func (u *User) attach(ctx actor.Context, req *parleypb.AttachRequest) {
	if u.broken {
		ctx.Respond(&parleypb.AttachResponse{Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "user grain restarting")})
		return
	}
	key := req.Conn.String()
	if _, ok := u.conns[key]; !ok {
		u.conns[key] = conn{pid: req.Conn, device: req.DeviceId}
		ctx.Watch(req.Conn)
	}
	ctx.Respond(&parleypb.AttachResponse{Cursor: u.cursors[req.DeviceId], LastSeq: u.seq})
}

func (u *User) detach(pid *actor.PID) {
	if pid == nil {
		return
	}
	if _, ok := u.conns[pid.String()]; !ok {
		return
	}
	delete(u.conns, pid.String())
	if len(u.conns) == 0 {
		id, store, now := u.id, u.deps.Store, nowMillis()
		go func() {
			cx, cancel := context.WithTimeout(context.Background(), u.deps.Settings.RequestTimeout)
			defer cancel()
			_ = store.SetLastSeen(cx, id, now)
		}()
	}
}

// ack moves a device's cursor forward, never past the queue's end.
func (u *User) ack(req *parleypb.AckRequest) {
	if u.broken {
		return
	}
	upTo := min(req.UpTo, u.seq)
	if req.DeviceId == "" || upTo <= u.cursors[req.DeviceId] {
		return
	}
	u.cursors[req.DeviceId] = upTo
	id, store := u.id, u.deps.Store
	go func() {
		cx, cancel := context.WithTimeout(context.Background(), u.deps.Settings.RequestTimeout)
		defer cancel()
		_ = store.SaveCursor(cx, id, req.DeviceId, upTo) // cursors only move forward in the store
	}()
}

func (u *User) status() *parleypb.StatusResponse {
	if len(u.conns) > 0 {
		return &parleypb.StatusResponse{Status: "online"}
	}
	return &parleypb.StatusResponse{Status: "offline"}
}
