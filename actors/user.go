package actors

import (
	"log/slog"
	"time"

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
	lastSeen int64        // when a connection of the user last heard it (Unix ms), in this activation
	timing   bool         // the idle timeout is set
	spend    map[parleypb.SpendRequest_Kind]*bucket
	p        presence
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
		for _, c := range u.conns {
			if m.Except == nil || !c.Equal(m.Except) {
				ctx.Send(c, m)
			}
		}
	case *parleypb.LoggedOut: // each connection knows its device
		u.relay(ctx, m)
	case *parleypb.AttachRequest:
		u.attach(ctx, m)
	case *parleypb.DetachRequest:
		if u.detach(m.Conn, m.LastHeard) {
			u.reshare(ctx, nil)
			u.disconnected(ctx)
		}
	case *onlineStored:
		u.onlineWritten(ctx, m)
	case *parleypb.Watch:
		u.watch(ctx, m)
	case *parleypb.DeviceStatus:
		u.deviceStatus(ctx, m)
	case *parleypb.PresenceSettingsChanged:
		u.settingsChanged(ctx)
	case *parleypb.ContactChanged:
		u.contactChanged(ctx, m)
	case *parleypb.StatusRequest:
		ctx.Respond(u.status())
	case *parleypb.AdminStateRequest:
		ctx.Send(m.ReplyTo, u.adminState())
	case *parleypb.SpendRequest:
		ctx.Respond(u.spendOne(m.Kind))
	case *membersChanged:
		for i := len(u.conns) - 1; i >= 0; i-- { // connections on a member that is gone
			if m.gone(u.conns[i]) && u.detach(u.conns[i], 0) {
				u.reshare(ctx, nil)
				u.disconnected(ctx)
			}
		}
		if !u.deps.Topology.Owns(KindUser, u.id) {
			u.deps.Log.Info("grain owned by another node now; stopping", slog.String("grain", KindUser+"/"+u.id))
			ctx.Poison(ctx.Self())
		}
	case *actor.ReceiveTimeout:
		if len(u.conns) == 0 && u.p.leaving == 0 {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopping:
		if len(u.conns) == 0 && u.p.leaving > 0 {
			u.goOffline(ctx) // within the grace period: watchers hear it now
		}
		// Moving to another node: the connections attach to the next activation and
		// read from the store what they missed meanwhile (and it writes the user
		// online again, under its node).
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
	b := u.deps.Settings.Budgets
	if u.find(req.Conn) < 0 {
		if b.SocketsPerUser > 0 && len(u.conns) >= b.SocketsPerUser {
			ctx.Respond(&parleypb.AttachResponse{Error: parleypb.Errorf(parleypb.ErrorReason_RATE_LIMITED,
				"this user has %d connections, as many as allowed", len(u.conns))})
			return
		}
		u.conns = append(u.conns, req.Conn)
		u.reshare(ctx, req.Conn)
		u.connected(ctx)
	}
	ctx.Respond(&parleypb.AttachResponse{Share: u.share()})
}

// share is one connection's part of the user's send and read budgets.
func (u *User) share() *parleypb.Share {
	b, n := u.deps.Settings.Budgets, float64(max(len(u.conns), 1))
	part := func(r Rate) (float64, float64) {
		if r.Burst <= 0 {
			return 0, 0 // no limit
		}
		return r.PerSecond / n, max(r.Burst/n, 1)
	}
	s := &parleypb.Share{}
	s.SendRate, s.SendBurst = part(b.Sends)
	s.ReadRate, s.ReadBurst = part(b.Reads)
	return s
}

// reshare tells each connection but except its new share, after their number changed.
func (u *User) reshare(ctx actor.Context, except *actor.PID) {
	s := u.share()
	for _, c := range u.conns {
		if !c.Equal(except) {
			ctx.Send(c, s)
		}
	}
}

// spendOne spends one unit of a budget kept here (groups created, conversations
// started): rate_limited once it is spent.
func (u *User) spendOne(kind parleypb.SpendRequest_Kind) *parleypb.SpendResponse {
	b := u.deps.Settings.Budgets
	var r Rate
	switch kind {
	case parleypb.SpendRequest_GROUP:
		r = b.Groups
	case parleypb.SpendRequest_CONVERSATION:
		r = b.Conversations
	default:
		return &parleypb.SpendResponse{Error: parleypb.Errorf(parleypb.ErrorReason_BAD_REQUEST, "no such budget")}
	}
	if u.spend == nil {
		u.spend = map[parleypb.SpendRequest_Kind]*bucket{}
	}
	bk := u.spend[kind]
	if bk == nil {
		bk = r.bucket()
		u.spend[kind] = bk
	}
	if !bk.take() {
		return &parleypb.SpendResponse{Error: parleypb.Errorf(parleypb.ErrorReason_RATE_LIMITED,
			"too many %s lately; try again in %s", spendWhat[kind], bk.wait().Round(time.Second))}
	}
	return &parleypb.SpendResponse{}
}

var spendWhat = map[parleypb.SpendRequest_Kind]string{
	parleypb.SpendRequest_GROUP: "groups created", parleypb.SpendRequest_CONVERSATION: "new conversations started"}

func (u *User) find(pid *actor.PID) int {
	for i, c := range u.conns {
		if c.Equal(pid) {
			return i
		}
	}
	return -1
}

// detach removes a connection, which last heard its client at heard (Unix ms; 0:
// now); it reports whether it had it. When the last goes, the user's lastSeen is
// the latest that any of its connections heard it: for a device that went silent
// and was closed as dead, when it went quiet, not when the sweep noticed.
func (u *User) detach(pid *actor.PID, heard int64) bool {
	i := u.find(pid)
	if pid == nil || i < 0 {
		return false
	}
	now := nowMillis()
	if heard <= 0 || heard > now {
		heard = now
	}
	u.lastSeen = max(u.lastSeen, heard)
	u.conns = append(u.conns[:i], u.conns[i+1:]...)
	if u.p.peers != nil {
		u.p.peers.away = dropPID(u.p.peers.away, pid)
	}
	if len(u.conns) == 0 {
		u.conns = nil
		u.deps.Store.SetLastSeen(u.id, u.lastSeen, nil)
		if u.p.online {
			u.deps.Store.SetDisconnected(u.id, u.deps.Holder, nil) // messages from now on make pushes
		}
	}
	return true
}

func (u *User) status() *parleypb.StatusResponse {
	if st := u.statusNow(); st != statusOffline {
		return &parleypb.StatusResponse{Status: st.String()}
	}
	return &parleypb.StatusResponse{Status: "offline", LastSeen: u.lastSeen}
}
