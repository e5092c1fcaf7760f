package actors

import (
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Registry lists the grains active on this node, for the admin endpoint, the
// metrics and the ownership checks after a topology change. Safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	active map[string]activation // "Kind/identity"
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
