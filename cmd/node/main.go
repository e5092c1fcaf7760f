// Command node runs one Parley node: a cluster member with the WebSocket gateway,
// the REST API and the admin endpoint. Configuration comes from cluster.yaml,
// overridden by the environment, overridden by flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/node"
)

// exitEvicted tells a supervisor that the node left the cluster after the others
// dropped it, and must be started again (it gets a new member id).
const exitEvicted = 3

func main() {
	os.Exit(run())
}

func run() int {
	path := flag.String("config", "", "path of cluster.yaml (empty: defaults and environment only)")
	httpAddr := flag.String("http", "", "REST + WebSocket listen address (overrides listen.http)")
	adminAddr := flag.String("admin", "", "admin listen address (overrides listen.admin; 'off' disables)")
	dbURL := flag.String("db", "", "PostgreSQL URL (overrides database.url and DATABASE_URL)")
	nodeID := flag.Int("node-id", -2, "Snowflake node id 0..1023, or -1 for a leased one (overrides node.id)")
	check := flag.Bool("check", false, "validate the configuration and exit")
	flag.Parse()

	cfg, err := config.Load(*path)
	if err == nil {
		err = applyFlags(&cfg, *httpAddr, *adminAddr, *dbURL, *nodeID)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "configuration: %v\n", err)
		return 2
	}
	if *check {
		fmt.Println("configuration ok")
		return 0
	}
	log := newLogger(cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := node.Run(ctx, cfg, log); err != nil {
		log.Error("node stopped", slog.Any("error", err))
		if errors.Is(err, node.ErrEvicted) {
			return exitEvicted
		}
		return 1
	}
	return 0
}

func applyFlags(cfg *config.Config, httpAddr, adminAddr, dbURL string, nodeID int) error {
	if httpAddr != "" {
		cfg.Listen.HTTP = httpAddr
	}
	switch adminAddr {
	case "":
	case "off":
		cfg.Listen.Admin = ""
	default:
		cfg.Listen.Admin = adminAddr
	}
	if dbURL != "" {
		cfg.Database.URL = dbURL
	}
	if nodeID != -2 {
		cfg.Node.ID = nodeID
	}
	return cfg.Validate()
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
