// Package node wires one Parley node: the store, the Snowflake node-id lease, the
// actor system and cluster membership, the WebSocket gateway, the REST API and the
// admin endpoint; and it shuts them down in order.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/internal/membership"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/push"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
	"github.com/parleychat/parley/web"
)

// FaultHoldDelivery names an environment variable for tests: set to 1, the node
// commits messages (into every member's queue) but never pushes them live, as if it
// died right after each commit.
const FaultHoldDelivery = "PARLEY_FAULT_HOLD_DELIVERY"

// Node is one running node. Every goroutine it starts belongs to it and ends in
// Shutdown, which stops the parts in order: stop accepting, close sockets with 1001
// after flushing, leave the cluster (grains stop; their writes are queued already),
// stop the background work (lease renewal, membership watch), release the node id
// (keeping its reserved floor), flush the store's queued writes and close it.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	store   *postgres.Store
	lease   *nodeLease
	cluster *cluster.Cluster
	gw      *gateway.Server
	servers []*http.Server

	bg     context.Context // the background work's: ended by Shutdown
	stopBG context.CancelFunc
	wg     sync.WaitGroup // the goroutines of bg and of the servers
	failed chan error     // a server failed, or the membership watch evicted this node

	once sync.Once
	done chan struct{} // closed when Shutdown has finished
}

// Run starts a node and serves until ctx ends or the node fails, then shuts it
// down (bounded by gateway.shutdownGrace, then each step's own bound).
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	n, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return n.Wait(ctx)
}

// Start starts a node; ctx bounds the start only. On an error, what was started
// is shut down again.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Node, err error) {
	n := &Node{cfg: cfg, log: log, failed: make(chan error, 4), done: make(chan struct{})}
	n.bg, n.stopBG = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.Shutdown(context.Background())
		}
	}()
	met := metrics.New()
	n.store, err = postgres.Open(ctx, cfg.Database.URL, postgres.Options{Metrics: met,
		MaxConns: cfg.Database.MaxConns, BatchDelay: cfg.Database.BatchDelay, BatchMax: cfg.Database.BatchMax,
		Committers: cfg.Database.Committers, PushGather: cfg.Push.Gather})
	if err != nil {
		return nil, err
	}
	providers, err := pushProviders(cfg.Push)
	if err != nil {
		return nil, err
	}
	n.lease, err = takeNodeID(ctx, n.store, cfg.Node.ID)
	if err != nil {
		return nil, err
	}
	n.log = log.With(slog.Int("node", n.lease.NodeID))
	log = n.log
	n.goBG(func() {
		if err := n.lease.renew(n.bg, log); err != nil {
			n.failed <- err
		}
	})

	signer, err := newSigner(cfg.Auth, cfg.Cluster.Provider, log)
	if err != nil {
		return nil, err
	}
	sessions := auth.NewSessions(signer, n.store, auth.SessionsConfig{
		CacheTTL: cfg.Auth.SessionCacheTTL, CacheEntries: cfg.Auth.SessionCacheEntries})
	hasher, err := auth.NewHasher(cfg.Auth.BcryptCost, cfg.Auth.HashConcurrency)
	if err != nil {
		return nil, err
	}

	deps := &actors.Deps{Store: n.store, IDs: n.lease.gen, Log: log, Grains: actors.NewRegistry(), Metrics: met,
		Hub:       actors.NewChannelHub(met),
		Directory: actors.NewDirectory(n.store), Holder: n.lease.Holder,
		Settings: actors.Settings{
			RequestTimeout: cfg.Grains.RequestTimeout, IdleTimeout: cfg.Grains.IdleTimeout,
			DedupeCache: cfg.Grains.DedupeCache, MaxTextBytes: cfg.Limits.MaxTextBytes,
			SyncBatch: cfg.Limits.SyncBatch, HistoryMax: cfg.Limits.HistoryMax, HistoryDefault: cfg.Limits.HistoryDefault,
			MaxGroupMembers:   cfg.Limits.MaxGroupMembers,
			MaxChannelMembers: cfg.Limits.MaxChannelMembers,
			ChannelAddBatch:   cfg.Limits.ChannelAddBatch,
			ChannelsPerUser:   cfg.Limits.ChannelsPerUser,
			ChannelUnreadMax:  cfg.Limits.ChannelUnreadMax,
			ChannelPosts:      actors.Rate{PerSecond: cfg.Limits.ChannelPosts.Rate, Burst: float64(cfg.Limits.ChannelPosts.Burst)},
			ChannelMentions:   cfg.Limits.ChannelMentions,
			Budgets:           budgets(cfg.Limits),
			PresenceGrace:     cfg.Presence.Grace,
			AckSaveDelay:      cfg.Receipts.SaveDelay,
			ReceiptTellDelay:  cfg.Receipts.TellDelay,
			HoldDelivery:      os.Getenv(FaultHoldDelivery) == "1",
		}}
	for _, kind := range []string{actors.KindUser, actors.KindConversation} {
		met.GaugeFunc("parley_grains_active", "Grains active on this node, by kind.", map[string]string{"kind": kind},
			func() float64 { return float64(deps.Grains.Count(kind)) })
	}
	m, err := membership.New(cfg.Cluster, log)
	if err != nil {
		return nil, err
	}
	n.cluster, err = startCluster(cfg, log, deps, m)
	if err != nil {
		return nil, err
	}
	if err := actors.StartChannelRelay(n.cluster.ActorSystem, deps.Hub); err != nil {
		return nil, fmt.Errorf("starting the channel relay: %w", err)
	}
	n.goBG(func() {
		if err := m.Watch(n.bg, n.cluster); err != nil && n.bg.Err() == nil {
			n.failed <- fmt.Errorf("%w: %v", ErrEvicted, err)
		}
	})

	n.gw, err = gateway.New(gateway.Config{
		Workers: cfg.Gateway.Workers, ReadTimeout: cfg.Gateway.ReadTimeout, WriteTimeout: cfg.Gateway.WriteTimeout,
		OutboundBytes: cfg.Gateway.OutboundBytes,
		MaxFrameBytes: cfg.Limits.MaxFrameBytes, FrameRate: cfg.Limits.FrameRate, FrameBurst: cfg.Limits.FrameBurst,
		DeadAfter: cfg.Presence.DeadAfter, IdleAfter: cfg.Presence.AwayAfter, Metrics: met,
	}, log, authenticator(sessions), func(s *gateway.Socket, id gateway.Identity) gateway.Handler {
		return actors.SpawnConnection(deps, s, id.User, id.Device)
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	rest := api.New(api.Options{Store: n.store, Signer: signer, Sessions: sessions, Limits: cfg.Limits, Hasher: hasher,
		Throttle: loginThrottle(cfg.Auth), Log: log, Presence: presence(deps), Groups: groups(deps), Contacts: n.store,
		Channels: channels(deps), ChannelStore: n.store,
		SettingsChanged: func(user string) { actors.Tell(deps, user, actors.KindUser, &parleypb.PresenceSettingsChanged{}) },
		ContactsChanged: func(user, contact string, added bool) {
			actors.Tell(deps, user, actors.KindUser, &parleypb.ContactChanged{Contact: contact, Added: added})
		},
		LoggedOut: func(user, device string) {
			actors.Tell(deps, user, actors.KindUser, &parleypb.LoggedOut{DeviceId: device})
		},
		Push: n.store, PushCheck: pushCheck(providers)})
	rest.Register(mux)
	mux.HandleFunc("/v1/ws", rest.PerAddress(func(w http.ResponseWriter, r *http.Request) { n.gw.ServeHTTP(w, r, api.WriteError) }))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	rest.RegisterWebPush(mux, cfg.Push.WebPush.PublicKey)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	mux.Handle("/", web.Handler()) // the browser client

	if len(providers) > 0 {
		sender := push.NewSender(n.store, providers, cfg.Push, met, log)
		n.goBG(func() { sender.Run(n.bg) })
	}

	servers := []*http.Server{newServer(cfg.Listen, mux)}
	if cfg.Listen.Admin != "" {
		servers = append(servers, newAdminServer(cfg.Listen, adminMux(cfg.Admin, &admin{deps: deps, store: n.store}, met)))
	}
	info := actors.NodeInfo{NodeID: n.lease.NodeID, StartedAt: time.Now(), Version: buildVersion()}
	for i, srv := range servers {
		var ln net.Listener
		if i == 0 { // the main listener: at most listen.maxConns connections
			ln, err = limitListen(srv.Addr, cfg.Listen.MaxConns, cfg.Listen.ConnsPerAddress, cfg.Auth.ExemptPrefixes())
		} else {
			ln, err = net.Listen("tcp", srv.Addr)
		}
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", srv.Addr, err)
		}
		log.Info("listening", slog.String("addr", ln.Addr().String()))
		if i == 0 {
			info.HTTP = ln.Addr().String()
		} else {
			info.Admin = ln.Addr().String()
		}
		n.servers = append(n.servers, srv)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				n.failed <- fmt.Errorf("serving %s: %w", srv.Addr, err)
			}
		}()
	}
	if err := actors.StartAdmin(deps, info); err != nil {
		return nil, fmt.Errorf("starting the admin actor: %w", err)
	}
	return n, nil
}

// goBG runs f as the node's background work, until n.bg ends.
func (n *Node) goBG(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// Wait serves until ctx ends (nil) or the node fails (ErrEvicted, or a listener's
// error), then shuts the node down.
func (n *Node) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-n.failed:
	}
	grace, cancel := context.WithTimeout(context.Background(), n.cfg.Gateway.ShutdownGrace)
	defer cancel()
	if serr := n.Shutdown(grace); err == nil {
		err = serr
	}
	return err
}

// Shutdown stops the node in order and waits for every goroutine it started. ctx
// bounds the draining of sockets and REST requests; leaving the cluster and
// flushing the store have bounds of their own. It may be called more than once, and
// concurrently: every call returns when the first is done.
func (n *Node) Shutdown(ctx context.Context) error {
	n.once.Do(func() {
		defer close(n.done)
		if n.cluster != nil || n.gw != nil {
			n.log.Info("shutting down")
		}
		for _, srv := range n.servers {
			_ = srv.Shutdown(ctx) // stops accepting; WebSockets were taken over and are the gateway's
		}
		if n.gw != nil {
			n.gw.Shutdown(ctx)
		}
		if n.cluster != nil {
			bounded(leaveTimeout, func() { n.cluster.Shutdown(true) }, func() {
				n.log.Warn("leaving the cluster is taking too long; going on", slog.Duration("after", leaveTimeout))
			})
		}
		n.stopBG()
		for _, srv := range n.servers {
			_ = srv.Close() // whatever Shutdown's ctx cut short
		}
		n.wg.Wait()
		if n.lease != nil {
			n.lease.release()
		}
		if n.store != nil {
			n.store.Close() // commits every write queued before it, then refuses with ErrClosed
		}
	})
	<-n.done
	return nil
}

// leaveTimeout bounds leaving the cluster at shutdown (the library's graceful
// shutdown waits on the other members).
const leaveTimeout = 15 * time.Second

// bounded runs f, waiting at most d for it; past d it calls late and returns (f
// goes on in the background).
func bounded(d time.Duration, f, late func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		late()
	}
}

// ErrEvicted means the other members dropped this one: it must start again under a
// new member id (cmd/node exits with a distinct code for its supervisor).
var ErrEvicted = errors.New("node: evicted from the cluster")

func startCluster(cfg config.Config, log *slog.Logger, deps *actors.Deps, m *membership.Membership) (c *cluster.Cluster, err error) {
	libLog := log.With(slog.String("lib", "protoactor"))
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet(libLog) }),
		actor.WithDeadLetterRequestLogging(false))
	resizeRegistry(system, registryBuckets)
	ropts, err := remoteOptions(cfg.Cluster, log)
	if err != nil {
		return nil, err
	}
	rcfg := remote.Configure(cfg.Cluster.Host, cfg.Cluster.Port, ropts...)
	ccfg := cluster.Configure(cfg.Cluster.Name, m.Provider, disthash.New(), rcfg,
		cluster.WithKinds(actors.Kinds(deps)...), cluster.WithRequestTimeout(cfg.Grains.RequestTimeout))
	c = cluster.New(system, ccfg)
	// Grains may be activated by other members as soon as StartMember listens.
	deps.Cluster = c
	deps.Topology = actors.NewTopology(c, deps.Grains)
	m.Bind(c)
	defer func() { // StartMember panics when it cannot listen
		if r := recover(); r != nil {
			err = fmt.Errorf("starting cluster member: %v", r)
		}
	}()
	c.StartMember()
	return c, nil
}

// rejectUnary refuses unary gRPC calls on the remote port: Proto.Actor only streams,
// and its unary diagnostics methods panic (research/protoactor.md §4).
func rejectUnary(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
	return nil, status.Error(codes.Unimplemented, "unary calls are not served")
}

// quiet keeps the library's logs at warn and above.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{Handler: l.Handler(), min: slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

// benign are the library's messages logged at error level for normal events (a peer
// that is not up yet, a graceful leave, a retried request); they are dropped.
var benign = map[string]bool{
	"Bad connection to the node health status": true,
	"Automanaged server stopping..!":           true,
	"EndpointWriter lost connection":           true,
	"cluster.RequestFuture failed":             true,
	// remote, redialling a member that left (or died) until the topology drops it.
	"EndpointWriter failed to connect":                  true,
	"EndpointWriter failed to create receive stream":    true,
	"EndpointWriter failed to receive connect response": true,
	// zk provider, on shutdown and after an eviction (the watchdog reports that).
	"Failure watching service.": true,
	"Failed to keepWatching.":   true,
	"FetchNodes fail.":          true,
	"list children fail":        true,
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	if benign[r.Message] {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(a), min: f.min}
}

func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(n), min: f.min}
}

func presence(deps *actors.Deps) api.Presence {
	return func(_ context.Context, user string) (string, int64, error) {
		r, err := actors.Call[*parleypb.StatusResponse](deps, user, actors.KindUser, &parleypb.StatusRequest{})
		if err != nil {
			return "", 0, err
		}
		return r.Status, r.LastSeen, nil
	}
}

// budgets are the actors' per-user limits from the configuration.
func budgets(l config.Limits) actors.Budgets {
	rate := func(r config.RateLimit) actors.Rate { return actors.Rate{PerSecond: r.Rate, Burst: float64(r.Burst)} }
	return actors.Budgets{SocketsPerUser: l.SocketsPerUser, Sends: rate(l.UserSends), Reads: rate(l.UserReads),
		Groups: rate(l.GroupsCreated), Conversations: rate(l.ConversationsStarted), TypingInterval: l.TypingInterval}
}

func channels(deps *actors.Deps) api.Channels {
	return func(_ context.Context, req *parleypb.ChannelRequest) (*parleypb.ChannelResponse, error) {
		return actors.ChannelCall(deps, req)
	}
}

func groups(deps *actors.Deps) api.Groups {
	return func(_ context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
		return actors.GroupCall(deps, req)
	}
}
