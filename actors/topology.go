package actors

import (
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// ownerRecheck is how long a grain activated on a node that does not own it (a
// caller's view of the members was older or newer than ours) waits before checking
// again; views converge within a provider refresh.
const ownerRecheck = 2 * time.Second

// membersChanged tells a local actor that the cluster's members changed (alive
// holds the member addresses now) or, with alive nil, asks a grain only to check its
// ownership again. A grain stops if another node owns its identity now; a user grain
// drops its connections on members that are gone; a connection whose user grain was
// on such a member attaches to the next activation. So nothing watches anything
// across nodes: a watch costs each idle connection two watcher sets, and a member
// that dies is seen by every node's topology anyway.
type membersChanged struct{ alive map[string]bool }

// gone reports whether pid is on a member that left (never for a local one).
func (m *membersChanged) gone(pid *actor.PID) bool {
	return m.alive != nil && pid != nil && !m.alive[pid.Address]
}

// Topology is this node's view of the cluster members and of who owns which grain,
// kept from the cluster's topology events, and the registry of this node's
// connection actors, which hear of member changes. Proto.Actor places a grain
// wherever a caller's (possibly stale) view says, and never moves it again until the
// next topology change; grains use Owns to leave a node that does not own them, so
// that a split activation is short-lived. Safe for concurrent use.
type Topology struct {
	mu      sync.Mutex
	self    string
	rdv     *cluster.Rendezvous
	members []Member
	grains  *Registry
	conns   map[*actor.PID]*Connection // this node's connection actors (their user, device and since)
	root    *actor.RootContext
}

// Member is a cluster member as this node sees it.
type Member struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds"`
}

// NewTopology follows c's topology events. Call before c starts.
//
// It also drops from c's PID cache each activation that stopped anywhere in the
// cluster (Proto.Actor broadcasts ActivationTerminated to every member but never
// evicts the cached PID, research/protoactor.md §7.10): a push to a user grain that
// passivated would otherwise go to dead letters until a request to it failed.
func NewTopology(c *cluster.Cluster, grains *Registry) *Topology {
	t := &Topology{rdv: cluster.NewRendezvous(), grains: grains, conns: map[*actor.PID]*Connection{},
		root: c.ActorSystem.Root}
	c.ActorSystem.EventStream.Subscribe(func(e any) {
		switch e := e.(type) {
		case *cluster.ClusterTopology:
			t.update(c.ActorSystem.Address(), e)
		case *cluster.ActivationTerminated:
			if id := e.GetClusterIdentity(); id != nil {
				c.PidCache.RemoveByValue(id.Identity, id.Kind, e.Pid)
			}
		}
	})
	return t
}

func (t *Topology) update(self string, tp *cluster.ClusterTopology) {
	members := make([]*cluster.Member, len(tp.Members))
	view := make([]Member, len(tp.Members))
	alive := map[string]bool{self: true}
	for i, m := range tp.Members {
		members[i] = &cluster.Member{Id: m.Id, Host: m.Host, Port: m.Port, Kinds: append([]string(nil), m.Kinds...)}
		view[i] = Member{ID: m.Id, Address: members[i].Address(), Kinds: members[i].Kinds}
		alive[view[i].Address] = true
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(members)
	t.mu.Lock()
	t.self, t.rdv, t.members = self, rdv, view
	conns := make([]*actor.PID, 0, len(t.conns))
	for pid := range t.conns {
		conns = append(conns, pid)
	}
	t.mu.Unlock()
	msg := &membersChanged{alive: alive}
	for _, pid := range t.grains.pids() { // each grain decides, with the newest view
		t.root.Send(pid, msg)
	}
	for _, pid := range conns {
		t.root.Send(pid, msg)
	}
}

// Owns reports whether this node owns the grain in its current view (true while
// the view is empty, before the first topology event).
func (t *Topology) Owns(kind, identity string) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.members) == 0 {
		return true
	}
	return t.rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Kind: kind, Identity: identity}) == t.self
}

// Members returns this node's view of the members.
func (t *Topology) Members() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Member(nil), t.members...)
}

// checkLater makes a grain activated here re-check its ownership after a while if
// this node does not own it now.
func (t *Topology) checkLater(ctx actor.Context, kind, identity string) {
	if t.Owns(kind, identity) {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(ownerRecheck, func() { root.Send(self, &membersChanged{}) })
}

// addConn and removeConn keep the registry of this node's connection actors.
func (t *Topology) addConn(pid *actor.PID, c *Connection) {
	if t != nil {
		t.mu.Lock()
		t.conns[pid] = c
		t.mu.Unlock()
	}
}

func (t *Topology) removeConn(pid *actor.PID) {
	if t != nil {
		t.mu.Lock()
		delete(t.conns, pid)
		t.mu.Unlock()
	}
}

// localConn is one of this node's connections.
type localConn struct {
	pid    *actor.PID
	device string
	since  int64 // Unix ms
}

// connsOf returns this node's connections of user.
func (t *Topology) connsOf(user string) []localConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []localConn
	for pid, c := range t.conns {
		if c.user == user {
			out = append(out, localConn{pid: pid, device: c.device, since: c.since})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].since < out[j].since })
	return out
}

// connCount is the number of this node's connections.
func (t *Topology) connCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
