package actors

import (
	"context"
	"log/slog"
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
	// AppendConversationAsync calls done on a store goroutine: it must not block.
	AppendConversationAsync(a persistence.ConversationAppend, done func(persistence.ConversationAppended, error))
	ConversationHead(ctx context.Context, conv string) (version uint64, lastID int64, err error)
	ReadQueue(ctx context.Context, user string, after uint64, limit int) (persistence.QueuePage, error)
	ReadQueueAtCursor(ctx context.Context, user, device string, limit int) (persistence.QueuePage, error)
	History(ctx context.Context, conv string, before, after int64, limit int) ([]*parleypb.Message, bool, error)
	GroupEvents(ctx context.Context, conv string) ([]*parleypb.GroupEvent, error)
	FindByClientID(ctx context.Context, conv, sender, clientID string) (*parleypb.Message, error)
	// SaveCursor calls done (may be nil) on a store goroutine.
	SaveCursor(user, device string, cursor uint64, delivered []persistence.ReceiptMove, done func(error))
	// SaveRead calls done on a store goroutine: persistence.ErrNotFound if upTo is
	// no message of conv after floor.
	SaveRead(user, conv string, upTo, floor int64, done func(*persistence.ReceiptMove, error))
	Receipts(ctx context.Context, conv string) ([]persistence.Watermark, error)
	UsersExist(ctx context.Context, ids []string) (map[string]bool, error)
	// SetLastSeen calls done (may be nil) on a store goroutine.
	SetLastSeen(id string, ms int64, done func(error))
	// SetOnline calls done (may be nil) on a store goroutine.
	SetOnline(user, holder string, online bool, since int64, done func(error))
	// SetDisconnected calls done (may be nil) on a store goroutine.
	SetDisconnected(user, holder string, done func(error))
	OnlinePeers(ctx context.Context, user string) (watchers, contacts []string, err error)
	ContactIDs(ctx context.Context, user string) ([]string, error)
	Visibility(ctx context.Context, user, viewer string) (visibility string, addedViewer bool, err error)

	Channel(ctx context.Context, conv string) (persistence.Channel, error)
	ChannelRole(ctx context.Context, conv, user string) (role int, ok bool, err error)
	// ChannelRoles returns the roles of those of users who are members of conv.
	ChannelRoles(ctx context.Context, conv string, users []string) (map[string]int, error)
	ChannelIDsOf(ctx context.Context, user string, limit int) ([]string, error)
	ChannelsOf(ctx context.Context, user string, limit, unreadMax int) ([]*parleypb.ChannelState, error)
	HistoryAfter(ctx context.Context, conv string, after, before int64, limit int) ([]*parleypb.Message, bool, error)
	// SaveChannelRead calls done (may be nil) on a store goroutine.
	SaveChannelRead(user, conv string, upTo int64, done func(error))
}

// Budgets are the per-user limits. A user's sends and reads are split evenly among
// its live connections; the rest are spent at its user grain.
type Budgets struct {
	SocketsPerUser int           // live connections of one user; 0: no limit
	Sends          Rate          // sends
	Reads          Rate          // entries returned by sync and history
	Groups         Rate          // groups created
	Conversations  Rate          // direct conversations started (a first message to someone)
	TypingInterval time.Duration // at most one typing notice per user and conversation in it; 0: no limit
}

// Rate is a token bucket: Burst at once, refilled at PerSecond. Burst 0: no limit.
type Rate struct{ PerSecond, Burst float64 }

func (r Rate) bucket() *bucket {
	if r.Burst <= 0 {
		return newBucket(0, 0)
	}
	return newBucket(r.PerSecond, r.Burst)
}

// Settings are the actors' limits and timings.
type Settings struct {
	RequestTimeout  time.Duration // one grain request, retries included
	IdleTimeout     time.Duration // passivation of an idle grain
	DedupeCache     int           // client ids a conversation grain remembers the answer of
	MaxTextBytes    int
	SyncBatch       int
	HistoryMax      int
	HistoryDefault  int
	MaxGroupMembers int
	Budgets         Budgets
	// Channels: members at most, users added per call at most, channels one user's
	// connections follow at most, the unread count's cap, and the post rate of a
	// plain member of an open channel.
	MaxChannelMembers int
	ChannelAddBatch   int
	ChannelsPerUser   int
	ChannelUnreadMax  int
	ChannelPosts      Rate
	ChannelMentions   int // members one open-channel post mentions into their queues, at most
	// PresenceGrace is how long a user whose last connection went stays shown
	// online: a reconnect within it shows its watchers nothing.
	PresenceGrace time.Duration
	// AckSaveDelay is how long a connection gathers received frames before it writes
	// the cursor and their delivered watermarks (0: at once); their receipts are
	// told live at once.
	AckSaveDelay time.Duration
	// ReceiptTellDelay is how long a node gathers the live receipts due to one user
	// before it tells them together (0: at once).
	ReceiptTellDelay time.Duration
	// HoldDelivery is fault injection for tests: committed messages are answered but
	// never pushed live, as if the node died right after each commit.
	HoldDelivery bool
}

// Deps are what every actor of a node shares.
type Deps struct {
	Cluster   *cluster.Cluster
	Store     Store
	IDs       *ids.Generator
	Log       *slog.Logger
	Settings  Settings
	Grains    *Registry
	Topology  *Topology
	Directory *Directory       // who exists, checked before a grain is activated for it; may be nil
	Holder    string           // this node's node-id lease holder: whose online rows are its users'
	Metrics   *metrics.Metrics // may be nil
	Hub       *ChannelHub      // this node's live channel feed; may be nil (no channel frames)

	relay relay // the receipt relay, started at first use
}

// Kinds returns the grain kinds to register with the cluster. d.Cluster may be set
// after this call (the kinds are needed to build the cluster).
func Kinds(d *Deps) []*cluster.Kind {
	return []*cluster.Kind{
		cluster.NewKind(KindUser, actor.PropsFromProducer(func() actor.Actor { return &User{deps: d} },
			actor.WithDispatcher(mailboxes), actor.WithMailbox(d.Grains.boxes.producer()))),
		cluster.NewKind(KindConversation, actor.PropsFromProducer(func() actor.Actor { return &Conversation{deps: d} },
			actor.WithDispatcher(mailboxes), actor.WithMailbox(d.Grains.boxes.producer()))),
	}
}

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

// Tell sends msg to a grain from outside any actor (the REST tier), without
// waiting (best effort).
func Tell(d *Deps, identity, kind string, msg any) {
	d.tell(d.Cluster.ActorSystem.Root, identity, kind, msg)
}

// tell sends msg to a grain without waiting (best effort).
func (d *Deps) tell(sender actor.SenderContext, identity, kind string, msg any) {
	if pid := d.pid(identity, kind); pid != nil {
		sender.Send(pid, msg)
	}
}

// timeout is a context bounded by the request timeout, for store calls.
func (d *Deps) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.Settings.RequestTimeout)
}

// clip shortens a client-supplied value for a log line.
func clip(s string) string {
	const most = 80
	if len(s) <= most {
		return s
	}
	return s[:most] + "…"
}

// nowMillis is the wall clock in Unix ms.
func nowMillis() int64 { return time.Now().UnixMilli() }
