package actors

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/proto/parleypb"
)

// Registry lists the grains active on this node, for the admin endpoint, the
// metrics and the ownership checks after a topology change. Safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	active map[string]activation // "Kind/identity"
	boxes  mailboxIndex          // the grains' mailboxes, for their depth
}

type activation struct {
	pid *actor.PID
	at  time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{active: map[string]activation{}} }

func (r *Registry) add(kind, id string, pid *actor.PID) {
	r.mu.Lock()
	r.active[kind+"/"+id] = activation{pid: pid, at: time.Now()}
	r.mu.Unlock()
}

func (r *Registry) remove(kind, id string, pid *actor.PID) {
	r.boxes.drop(pid.Id)
	r.mu.Lock()
	if a, ok := r.active[kind+"/"+id]; ok && a.pid.Equal(pid) {
		delete(r.active, kind+"/"+id)
	}
	r.mu.Unlock()
}

// Snapshot returns the active grains ("Kind/identity") with their activation times.
func (r *Registry) Snapshot() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.active))
	for k, a := range r.active {
		out[k] = a.at
	}
	return out
}

// Count is the number of active grains of a kind.
func (r *Registry) Count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.active {
		if strings.HasPrefix(k, kind) && len(k) > len(kind) && k[len(kind)] == '/' {
			n++
		}
	}
	return n
}

func (r *Registry) pids() map[string]*actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*actor.PID, len(r.active))
	for k, a := range r.active {
		out[k] = a.pid
	}
	return out
}

// find returns the activation of a grain on this node, if any.
func (r *Registry) find(kind, id string) (*parleypb.AdminGrain, bool) {
	r.mu.Lock()
	a, ok := r.active[kind+"/"+id]
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	return r.describe(kind, id, a), true
}

func (r *Registry) describe(kind, id string, a activation) *parleypb.AdminGrain {
	return &parleypb.AdminGrain{Kind: kind, Id: id, ActivatedAt: a.at.UnixMilli(),
		Mailbox: int32(r.boxes.depth(a.pid.Id)), Pid: a.pid}
}

// list returns up to limit active grains of kind ("": every kind), by kind and id,
// and whether it left some out.
func (r *Registry) list(kind string, limit int) ([]*parleypb.AdminGrain, bool) {
	type entry struct {
		kind, id string
		a        activation
	}
	r.mu.Lock()
	all := make([]entry, 0, len(r.active))
	for k, a := range r.active {
		gk, id, _ := strings.Cut(k, "/")
		if kind == "" || gk == kind {
			all = append(all, entry{gk, id, a})
		}
	}
	r.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].kind != all[j].kind {
			return all[i].kind < all[j].kind
		}
		return all[i].id < all[j].id
	})
	truncated := limit > 0 && len(all) > limit
	if truncated {
		all = all[:limit]
	}
	out := make([]*parleypb.AdminGrain, len(all))
	for i, e := range all {
		out[i] = r.describe(e.kind, e.id, e.a)
	}
	return out, truncated
}
