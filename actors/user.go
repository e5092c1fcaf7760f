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
// had no connection for the idle timeout (it has no timer while it has one).
type User struct {
	deps     *Deps
	id       string
	conns    []*actor.PID // a user has few: a slice costs less than a map
	lastSeen int64        // when the last connection went (Unix ms), in this activation
	timing   bool         // the idle timeout is set
}

// Receive handles one message.
func (u *User) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		u.id = m.Identity.Identity
		u.deps.Grains.add(KindUser, u.id, ctx.Self())
		u.deps.Topology.checkLater(ctx, KindUser, u.id)
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
	case *parleypb.StatusRequest:
		ctx.Respond(u.status())
	case *membersChanged:
		for i := len(u.conns) - 1; i >= 0; i-- { // connections on a member that is gone
			if m.gone(u.conns[i]) {
				u.detach(u.conns[i])
			}
		}
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
			ctx.Send(c, &parleypb.Reattach{})
		}
		return
	case *actor.Stopped:
		u.deps.Grains.remove(KindUser, u.id, ctx.Self())
		return
	}
	u.idleTimer(ctx)
}

// idleTimer keeps the idle timeout set exactly while the grain has no connection.
func (u *User) idleTimer(ctx actor.Context) {
	switch idle := len(u.conns) == 0; {
	case idle && !u.timing:
		ctx.SetReceiveTimeout(u.deps.Settings.IdleTimeout)
		u.timing = true
	case !idle && u.timing:
		ctx.CancelReceiveTimeout()
		u.timing = false
	}
}

// relay sends m to every live connection (one message, shared in this process).
func (u *User) relay(ctx actor.Context, m any) {
	for _, c := range u.conns {
		ctx.Send(c, m)
	}
}

func (u *User) attach(ctx actor.Context, req *parleypb.AttachRequest) {
	if u.find(req.Conn) < 0 {
		u.conns = append(u.conns, req.Conn)
	}
	ctx.Respond(&parleypb.AttachResponse{})
}

func (u *User) find(pid *actor.PID) int {
	for i, c := range u.conns {
		if c.Equal(pid) {
			return i
		}
	}
	return -1
}

func (u *User) detach(pid *actor.PID) {
	i := u.find(pid)
	if pid == nil || i < 0 {
		return
	}
	u.conns = append(u.conns[:i], u.conns[i+1:]...)
	if len(u.conns) == 0 {
		u.conns = nil
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
