package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// ownerRecheck is how long a grain activated on a node that does not own it (a
// caller's view of the members was older or newer than ours) waits before checking
// again; views converge within a provider refresh.
const ownerRecheck = 2 * time.Second

// ownerCheck asks a grain to stop if another node owns its identity now.
type ownerCheck struct{}

// Topology is this node's view of the cluster members and of who owns which grain,
// kept from the cluster's topology events. Proto.Actor places a grain wherever a
// caller's (possibly stale) view says, and never moves it again until the next
// topology change; grains use Owns to leave a node that does not own them, so that a
// split activation (queue writes in one, connections in the other) is short-lived.
// Safe for concurrent use.
type Topology struct {
	mu      sync.Mutex
	self    string
	rdv     *cluster.Rendezvous
	members []Member
	grains  *Registry
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
	t := &Topology{rdv: cluster.NewRendezvous(), grains: grains, root: c.ActorSystem.Root}
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
	for i, m := range tp.Members {
		members[i] = &cluster.Member{Id: m.Id, Host: m.Host, Port: m.Port, Kinds: append([]string(nil), m.Kinds...)}
		view[i] = Member{ID: m.Id, Address: members[i].Address(), Kinds: members[i].Kinds}
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(members)
	t.mu.Lock()
	t.self, t.rdv, t.members = self, rdv, view
	t.mu.Unlock()
	for _, pid := range t.grains.pids() { // each grain decides, with the newest view
		t.root.Send(pid, &ownerCheck{})
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
	time.AfterFunc(ownerRecheck, func() { root.Send(self, &ownerCheck{}) })
}
