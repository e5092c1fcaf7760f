package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/proto/parleypb"
)

// User is the grain of one user: it knows the user's live connections, wherever
// they are, and relays to them what the user's conversations push (new queue
// entries, typing). It writes nothing to the sync queue: a conversation's commit
// puts its messages into every member's queue. It loads nothing at activation, so
// a push to a user with no connection costs no store read; it passivates once it has
// had no connection for the idle timeout.
type User struct {
	deps     *Deps
	id       string
	conns    map[string]conn // by PID
	lastSeen int64           // when the last connection went (Unix ms), in this activation
}

type conn struct {
	pid    *actor.PID
	device string
}

// Receive handles one message.
func (u *User) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		u.id = m.Identity.Identity
		u.conns = map[string]conn{}
		u.deps.Grains.add(KindUser, u.id, ctx.Self())
		u.deps.Topology.checkLater(ctx, KindUser, u.id)
		ctx.SetReceiveTimeout(u.deps.Settings.IdleTimeout)
	case *parleypb.Deliver:
		for range m.Messages {
			u.deps.Metrics.Since(metrics.StageFanout, m.CommittedAt)
		}
		u.relay(ctx, m)
	case *parleypb.Notify: // transient: only to live connections
		u.relay(ctx, m)
	case *parleypb.AttachRequest:
		u.attach(ctx, m)
	case *parleypb.DetachRequest:
		u.detach(m.Conn)
	case *actor.Terminated:
		u.detach(m.Who)
	case *parleypb.StatusRequest:
		ctx.Respond(u.status())
	case *ownerCheck:
		if !u.deps.Topology.Owns(KindUser, u.id) {
			u.deps.Log.Info("grain owned by another node now; stopping", slog.String("grain", KindUser+"/"+u.id))
			ctx.Poison(ctx.Self())
		}
	case *actor.ReceiveTimeout:
		if len(u.conns) == 0 {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopping:
		// Moving to another node: the connections attach to the next activation and
		// read from the store what they missed meanwhile.
		for _, c := range u.conns {
			ctx.Send(c.pid, &parleypb.Reattach{})
		}
	case *actor.Stopped:
		u.deps.Grains.remove(KindUser, u.id, ctx.Self())
	}
}

// relay sends m to every live connection (one message, shared in this process).
func (u *User) relay(ctx actor.Context, m any) {
	for _, c := range u.conns {
		ctx.Send(c.pid, m)
	}
}

func (u *User) attach(ctx actor.Context, req *parleypb.AttachRequest) {
	key := req.Conn.String()
	if _, ok := u.conns[key]; !ok {
		u.conns[key] = conn{pid: req.Conn, device: req.DeviceId}
		ctx.Watch(req.Conn)
	}
	ctx.Respond(&parleypb.AttachResponse{})
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
		u.lastSeen = nowMillis()
		u.deps.Store.SetLastSeen(u.id, u.lastSeen, nil)
	}
}

func (u *User) status() *parleypb.StatusResponse {
	if len(u.conns) > 0 {
		return &parleypb.StatusResponse{Status: "online"}
	}
	return &parleypb.StatusResponse{Status: "offline", LastSeen: u.lastSeen}
}
