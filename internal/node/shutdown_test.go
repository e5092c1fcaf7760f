//go:build !race

// These tests run a node, Proto.Actor cluster included, inside the test process,
// where the library's own data races fire under -race (research/protoactor.md §7);
// `make test` runs them in its pass without -race. The e2e tests race-check the
// same code in node processes.

package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
)

func nodeConfig(t *testing.T, db string) config.Config {
	cfg := config.Default()
	cfg.Database.URL = db
	cfg.Listen.HTTP, cfg.Listen.Admin = "127.0.0.1:0", ""
	cfg.Auth.TokenSecret = "a test key of at least thirty-two bytes!"
	cfg.Auth.BcryptCost = 4
	cfg.Node.ID = 77
	return cfg
}

// Shutdown may be called many times and at once: each call returns once the node
// has stopped, the store refuses writes after it, and the node id is released (the
// next node asking for it gets it).
func TestShutdownIsIdempotent(t *testing.T) {
	db := testenv.DatabaseURL(t)
	cfg := nodeConfig(t, db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(context.Background(), cfg, log)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, n.Shutdown(context.Background()))
		}()
	}
	wg.Wait()
	require.NoError(t, n.Shutdown(context.Background()), "once more, after it stopped")

	done := make(chan error, 1)
	n.store.AppendConversationAsync(persistence.ConversationAppend{Conversation: "dm:a:b"},
		func(_ persistence.ConversationAppended, err error) { done <- err })
	require.ErrorIs(t, <-done, postgres.ErrClosed, "a late write fails; it does not panic")

	again, err := Start(context.Background(), cfg, log)
	require.NoError(t, err, "node id %d released", cfg.Node.ID)
	require.NoError(t, again.Shutdown(context.Background()))
}

// A start that fails part way (here: its listener's port is taken) shuts down what
// it started: the node id is free for the next start.
func TestFailedStartCleansUp(t *testing.T) {
	db := testenv.DatabaseURL(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	cfg := nodeConfig(t, db)
	cfg.Listen.HTTP = taken.Addr().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err = Start(context.Background(), cfg, log)
	require.ErrorContains(t, err, "listening on")

	cfg.Listen.HTTP = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg, log)
	require.NoError(t, err, "node id %d released by the failed start", cfg.Node.ID)
	require.NoError(t, n.Shutdown(context.Background()))
}

// A node whose node id was taken by another holder stops (ErrLeaseLost): issuing
// ids on would repeat the other holder's.
func TestLostLeaseStopsTheNode(t *testing.T) {
	renew := leaseRenew
	leaseRenew = 100 * time.Millisecond
	defer func() { leaseRenew = renew }()
	db := testenv.DatabaseURL(t)
	cfg := nodeConfig(t, db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(context.Background(), cfg, log)
	require.NoError(t, err)
	_, err = n.store.Pool().Exec(context.Background(),
		`UPDATE node_leases SET holder = 'another node' WHERE node_id = $1`, cfg.Node.ID)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.ErrorIs(t, n.Wait(ctx), ErrLeaseLost)
}
