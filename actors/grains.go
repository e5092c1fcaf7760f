package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Kind names of the grains.
const (
	KindUser         = "User"
	KindConversation = "Conversation"
)

// Store is what the actors need from persistence (satisfied by *postgres.Store).
type Store interface {
	AppendConversation(ctx context.Context, a persistence.ConversationAppend) (persistence.ConversationAppended, error)
	AppendUser(ctx context.Context, a persistence.UserAppend) (persistence.UserAppended, error)
	ConversationVersion(ctx context.Context, conv string) (uint64, error)
	UserVersion(ctx context.Context, user string) (uint64, error)
	LastMessageID(ctx context.Context, conv string) (int64, error)
	ReadConversation(ctx context.Context, conv string, after int64, limit int) ([]*parleypb.Message, error)
	ReadQueue(ctx context.Context, user string, after uint64, limit int) ([]*parleypb.Message, error)
	History(ctx context.Context, conv string, before, after int64, limit int) ([]*parleypb.Message, bool, error)
	GroupEvents(ctx context.Context, conv string) ([]*parleypb.GroupEvent, error)
	FindByClientID(ctx context.Context, conv, sender, clientID string) (*parleypb.Message, error)
	SaveCursor(ctx context.Context, user, device string, cursor uint64) error
	Cursors(ctx context.Context, user string) (map[string]uint64, error)
	SaveSnapshot(ctx context.Context, stream string, version uint64, state []byte) error
	Snapshot(ctx context.Context, stream string) (uint64, []byte, error)
	UsersExist(ctx context.Context, ids []string) (map[string]bool, error)
	SetLastSeen(ctx context.Context, id string, ms int64) error
	ClearOutbox(ctx context.Context, conv string, upTo int64) error
	OutboxPending(ctx context.Context, conv string) (bool, error)
}

// Settings are the actors' limits and timings.
type Settings struct {
	RequestTimeout  time.Duration // one grain request
	IdleTimeout     time.Duration // passivation of an idle grain
	SnapshotEvery   int           // messages fanned out to every member between conversation snapshots
	MaxTextBytes    int
	SyncBatch       int
	HistoryMax      int
	HistoryDefault  int
	MaxGroupMembers int
	// HoldFanout is fault injection for tests: committed messages are not fanned
	// out, as if the node died right after each commit.
	HoldFanout bool
}

// Deps are what every actor of a node shares.
type Deps struct {
	Cluster  *cluster.Cluster
	Store    Store
	IDs      *ids.Generator
	Log      *slog.Logger
	Settings Settings
	Grains   *Registry
	Topology *Topology
	Metrics  *metrics.Metrics // may be nil
}

// Kinds returns the grain kinds to register with the cluster. d.Cluster may be set
// after this call (the kinds are needed to build the cluster).
func Kinds(d *Deps) []*cluster.Kind {
	return []*cluster.Kind{
		cluster.NewKind(KindUser, actor.PropsFromProducer(func() actor.Actor { return &User{deps: d} },
			actor.WithDispatcher(mailboxes))),
		cluster.NewKind(KindConversation, actor.PropsFromProducer(func() actor.Actor { return &Conversation{deps: d} },
			actor.WithDispatcher(mailboxes))),
	}
}

// Registry lists the grains active on this node, for the admin endpoint and the
// ownership checks after a topology change.
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
		if len(k) > len(kind) && k[len(kind)] == '/' && k[:len(kind)] == kind {
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

// errUnavailable is returned when a grain cannot be reached.
var errUnavailable = errors.New("actors: grain unavailable")

// pid resolves a grain's PID through the cluster's cache (activating it if needed).
func (d *Deps) pid(identity, kind string) *actor.PID {
	if pid, ok := d.Cluster.PidCache.Get(identity, kind); ok && pid != nil {
		return pid
	}
	pid := d.Cluster.Get(identity, kind)
	if pid != nil {
		d.Cluster.PidCache.Set(identity, kind, pid)
	}
	return pid
}

// ask sends msg to a grain and calls done in ctx's actor with the reply. A reply that
// times out or hits a dead activation drops the cached PID and is retried, up to
// tries attempts in all, which share the request timeout: a request that reaches an
// activation as it stops is lost rather than refused, so waiting it out whole would
// be slow. The grain's handlers are idempotent, so a retry is safe.
func (d *Deps) ask(ctx actor.Context, identity, kind string, msg any, tries int, done func(any, error)) {
	pid := d.pid(identity, kind)
	if pid == nil {
		done(nil, fmt.Errorf("%w: %s/%s", errUnavailable, kind, identity))
		return
	}
	attempt := max(d.Settings.RequestTimeout/time.Duration(max(tries, 1)), 500*time.Millisecond)
	f := ctx.RequestFuture(pid, msg, attempt)
	ctx.ReenterAfter(f, func(res any, err error) {
		if err != nil {
			d.Cluster.PidCache.RemoveByValue(identity, kind, pid)
			if tries > 1 {
				d.ask(ctx, identity, kind, msg, tries-1, done)
				return
			}
			done(nil, fmt.Errorf("%w: %s/%s: %v", errUnavailable, kind, identity, err))
			return
		}
		done(res, nil)
	})
}

// tell sends msg to a grain without waiting (best effort).
func (d *Deps) tell(sender actor.SenderContext, identity, kind string, msg any) {
	if pid := d.pid(identity, kind); pid != nil {
		sender.Send(pid, msg)
	}
}

// Request asks a grain from outside any actor (the REST tier), retrying as ask does.
func (d *Deps) Request(identity, kind string, msg any) (any, error) {
	return d.Cluster.Request(identity, kind, msg,
		cluster.WithTimeout(d.Settings.RequestTimeout), cluster.WithRetryCount(2))
}

// background runs f in a goroutine with a timeout and sends its result to self.
func background[T any](ctx actor.Context, timeout time.Duration, f func(context.Context) T) {
	self, system := ctx.Self(), ctx.ActorSystem()
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		system.Root.Send(self, f(c))
	}()
}

func grainError(reason parleypb.ErrorReason, format string, args ...any) *parleypb.GrainError {
	return &parleypb.GrainError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode maps a grain error reason to PROTOCOL.md's code.
func ErrorCode(r parleypb.ErrorReason) string {
	switch r {
	case parleypb.ErrorReason_BAD_REQUEST:
		return "bad_request"
	case parleypb.ErrorReason_UNAUTHORIZED:
		return "unauthorized"
	case parleypb.ErrorReason_FORBIDDEN:
		return "forbidden"
	case parleypb.ErrorReason_NOT_FOUND:
		return "not_found"
	case parleypb.ErrorReason_CONFLICT:
		return "conflict"
	case parleypb.ErrorReason_TOO_LARGE:
		return "too_large"
	case parleypb.ErrorReason_RATE_LIMITED:
		return "rate_limited"
	case parleypb.ErrorReason_UNAVAILABLE:
		return "unavailable"
	default:
		return "internal"
	}
}

// nowMillis is the wall clock in Unix ms.
func nowMillis() int64 { return time.Now().UnixMilli() }

// Wake activates a conversation grain so that it re-drives its pending fan-out.
func (d *Deps) Wake(conv string) {
	d.tell(d.Cluster.ActorSystem.Root, conv, KindConversation, &parleypb.Wake{})
}

// maxAppendFailures is how many appends in a row may fail (each followed by a
// reload) before a grain answers unavailable and stops.
const maxAppendFailures = 3

// recovery is what a single-writer grain does when an append fails: the stream moved
// (another activation wrote: ErrConflict) or the outcome is unknown. It reloads the
// stream's end and appends again (the store skips what did commit); after a
// conflict it also yields, stopping once its retried batch is in, and leaves the
// stream to the other activation.
type recovery struct {
	failures int  // appends failed in a row
	yield    bool // another activation appended
}

// failed records a failed append and reports whether to append again (after a
// successful reload).
func (r *recovery) failed(err error, reload func() error) bool {
	r.failures++
	if errors.Is(err, persistence.ErrConflict) {
		r.yield = true
	}
	return r.failures <= maxAppendFailures && reload() == nil
}
