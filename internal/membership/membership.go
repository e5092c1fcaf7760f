// Package membership builds the cluster provider that cluster.yaml names: "local"
// (one process), "automanaged" (processes on known addresses polling each other's
// health endpoints) or "zookeeper". The providers are Proto.Actor's own; this
// package binds them to loopback-safe listeners, routes their logs, and adds the
// watchdog a provider needs to notice that the others dropped this member.
package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/labstack/echo"

	"github.com/parleychat/parley/internal/config"
)

// Membership is a cluster provider, with what a node must do beside it.
type Membership struct {
	Provider cluster.ClusterProvider
	// Bind hands the started cluster to parts that need it (health endpoints).
	Bind func(c *cluster.Cluster)
	// Watch blocks until ctx ends (nil) or this member was dropped by the others
	// (an error): the node must then leave and start again under a new member id.
	Watch func(ctx context.Context, c *cluster.Cluster) error
}

// New builds the membership of cfg.Provider.
func New(cfg config.Cluster, log *slog.Logger) (*Membership, error) {
	switch cfg.Provider {
	case config.ProviderLocal:
		return &Membership{Provider: test.NewTestProvider(test.NewInMemAgent()), Bind: func(*cluster.Cluster) {}, Watch: idle}, nil
	case config.ProviderAutomanaged:
		return newAutomanaged(cfg)
	case config.ProviderZooKeeper:
		return newZooKeeper(cfg, log)
	}
	return nil, fmt.Errorf("membership: unknown provider %q", cfg.Provider)
}

func idle(ctx context.Context, _ *cluster.Cluster) error {
	<-ctx.Done()
	return nil
}

// newAutomanaged serves this member's health endpoint on cluster.host (the library
// would bind every interface) and polls the configured peers.
func newAutomanaged(cfg config.Cluster) (*Membership, error) {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Automanaged.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("membership: listening on %s: %w", addr, err)
	}
	var bound atomic.Pointer[cluster.Cluster]
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Listener = ln
	e.GET("/_health", func(ec echo.Context) error {
		c := bound.Load()
		if c == nil {
			return ec.NoContent(http.StatusServiceUnavailable)
		}
		host, port, err := c.ActorSystem.GetHostPort()
		if err != nil {
			return ec.NoContent(http.StatusServiceUnavailable)
		}
		return ec.JSON(http.StatusOK, automanaged.NewNode(c.Config.Name, c.ActorSystem.ID, host, port,
			cfg.Automanaged.Port, c.GetClusterKinds()))
	})
	p := automanaged.NewWithTesting(cfg.Automanaged.Refresh, cfg.Automanaged.Port, e, cfg.Automanaged.Peers...)
	return &Membership{Provider: p, Bind: func(c *cluster.Cluster) { bound.Store(c) }, Watch: idle}, nil
}
