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
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

// FaultHoldDelivery names an environment variable for tests: set to 1, the node
// commits messages (into every member's queue) but never pushes them live, as if it
// died right after each commit.
const FaultHoldDelivery = "PARLEY_FAULT_HOLD_DELIVERY"

// Run serves until ctx ends, then shuts down in order: stop accepting, close sockets
// with 1001 after flushing, leave the cluster, release the node id (keeping its
// reserved floor), flush the store's pending writes and close it.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	met := metrics.New()
	store, err := postgres.Open(ctx, cfg.Database.URL, postgres.Options{Metrics: met,
		MaxConns: cfg.Database.MaxConns, BatchDelay: cfg.Database.BatchDelay, BatchMax: cfg.Database.BatchMax,
		Committers: cfg.Database.Committers})
	if err != nil {
		return err
	}
	defer store.Close()

	lease, err := takeNodeID(ctx, store, cfg.Node.ID)
	if err != nil {
		return err
	}
	defer lease.release()
	log = log.With(slog.Int("node", lease.NodeID))
	go lease.renew(ctx, log)

	signer, err := newSigner(cfg.Auth, cfg.Cluster.Provider, log)
	if err != nil {
		return err
	}
	sessions := auth.NewSessions(signer, store, auth.SessionsConfig{
		CacheTTL: cfg.Auth.SessionCacheTTL, CacheEntries: cfg.Auth.SessionCacheEntries})
	hasher, err := auth.NewHasher(cfg.Auth.BcryptCost, cfg.Auth.HashConcurrency)
	if err != nil {
		return err
	}

	deps := &actors.Deps{Store: store, IDs: lease.gen, Log: log, Grains: actors.NewRegistry(), Metrics: met,
		Directory: actors.NewDirectory(store),
		Settings: actors.Settings{
			RequestTimeout: cfg.Grains.RequestTimeout, IdleTimeout: cfg.Grains.IdleTimeout,
			DedupeCache: cfg.Grains.DedupeCache, MaxTextBytes: cfg.Limits.MaxTextBytes,
			SyncBatch: cfg.Limits.SyncBatch, HistoryMax: cfg.Limits.HistoryMax, HistoryDefault: cfg.Limits.HistoryDefault,
			MaxGroupMembers: cfg.Limits.MaxGroupMembers,
			Budgets:         budgets(cfg.Limits),
			HoldDelivery:    os.Getenv(FaultHoldDelivery) == "1",
		}}
	for _, kind := range []string{actors.KindUser, actors.KindConversation} {
		met.GaugeFunc("parley_grains_active", "Grains active on this node, by kind.", map[string]string{"kind": kind},
			func() float64 { return float64(deps.Grains.Count(kind)) })
	}
	m, err := membership.New(cfg.Cluster, log)
	if err != nil {
		return err
	}
	c, err := startCluster(cfg, log, deps, m)
	if err != nil {
		return err
	}
	evicted := make(chan error, 1)
	go func() { evicted <- m.Watch(ctx, c) }()

	gw, err := gateway.New(gateway.Config{
		Workers: cfg.Gateway.Workers, ReadTimeout: cfg.Gateway.ReadTimeout, WriteTimeout: cfg.Gateway.WriteTimeout,
		OutboundBytes: cfg.Gateway.OutboundBytes,
		MaxFrameBytes: cfg.Limits.MaxFrameBytes, FrameRate: cfg.Limits.FrameRate, FrameBurst: cfg.Limits.FrameBurst,
		Metrics: met,
	}, log, authenticator(sessions), func(s *gateway.Socket, id gateway.Identity) gateway.Handler {
		return actors.SpawnConnection(deps, s, id.User, id.Device)
	})
	if err != nil {
		c.Shutdown(true)
		return err
	}

	mux := http.NewServeMux()
	api.New(api.Options{Store: store, Signer: signer, Sessions: sessions, Limits: cfg.Limits, Hasher: hasher,
		Throttle: loginThrottle(cfg.Auth), Log: log, Presence: presence(deps), Groups: groups(deps)}).Register(mux)
	mux.HandleFunc("GET /v1/ws", func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r, api.WriteError) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})

	servers := []*http.Server{newServer(cfg.Listen, mux)}
	if cfg.Listen.Admin != "" {
		servers = append(servers, newAdminServer(cfg.Listen, adminMux(cfg.Admin, deps, met)))
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		var ln net.Listener
		if i == 0 { // the main listener: at most listen.maxConns connections
			ln, err = limitListen(srv.Addr, cfg.Listen.MaxConns)
		} else {
			ln, err = net.Listen("tcp", srv.Addr)
		}
		if err != nil {
			gw.Shutdown(ctx)
			c.Shutdown(true)
			return fmt.Errorf("listening on %s: %w", srv.Addr, err)
		}
		log.Info("listening", slog.String("addr", ln.Addr().String()))
		go func() { errc <- srv.Serve(ln) }()
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
	case err = <-evicted:
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrEvicted, err)
		}
	}
	log.Info("shutting down")
	grace, cancel := context.WithTimeout(context.Background(), cfg.Gateway.ShutdownGrace)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(grace)
	}
	gw.Shutdown(grace)
	c.Shutdown(true)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ErrEvicted means the other members dropped this one: it must start again under a
// new member id (cmd/node exits with a distinct code for its supervisor).
var ErrEvicted = errors.New("node: evicted from the cluster")

func startCluster(cfg config.Config, log *slog.Logger, deps *actors.Deps, m *membership.Membership) (c *cluster.Cluster, err error) {
	libLog := log.With(slog.String("lib", "protoactor"))
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet(libLog) }),
		actor.WithDeadLetterRequestLogging(false))
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

func groups(deps *actors.Deps) api.Groups {
	return func(_ context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
		return actors.GroupCall(deps, req)
	}
}
