// Package postgres is Parley's store on PostgreSQL (pgx). It owns the schema (embedded
// migrations, applied at Open), the conversation appends with their expected-version
// check and the sync-queue ranges written with them, and the group committer that puts
// many grains' writes into one transaction.
//
// A Store is safe for concurrent use. Every write goes through the group commit:
// AppendConversation blocks until its transaction has committed (or failed); the
// Async forms and SaveCursor and SetLastSeen call back instead, on a committer
// goroutine. A commit that fails on bad data is split until the op that carries it
// fails alone. After Close, writes fail with ErrClosed.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/persistence"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune a Store. Zero values take the defaults noted.
type Options struct {
	MaxConns   int32            // pool size; zero means 16
	BatchDelay time.Duration    // how long a commit waits for more appends; zero means none
	BatchMax   int              // appends per commit at most; zero means 512
	Committers int              // appends' transactions in flight at once; zero means 1
	Metrics    *metrics.Metrics // commit latency, sizes and failures; may be nil
	// PushGather is how long a push decided by an append waits for more messages to
	// the same device, to go as one notification; zero means none.
	PushGather time.Duration
}

// Store is the PostgreSQL store.
type Store struct {
	pool   *pgxpool.Pool // reads, accounts, migrations
	writes *pgxpool.Pool // the messages' group commit's own connections
	// sideWrites are the side commit's, with synchronous_commit off.
	sideWrites *pgxpool.Pool
	push       *pgxpool.Pool // the push sender's claims and outcomes, with synchronous_commit off
	committer  *committer    // conversation appends
	side       *committer    // cursors and receipts, reads, last-seen times, online rows
	pushGather time.Duration
}

// Open connects, applies the migrations and starts the group committer.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	// Appends run the same statements with new parameters all the time; a custom plan
	// per call over the partitioned tables costs more than the statement itself.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	// Every statement here finds its rows by key. A generic plan made while a table is
	// small (a fresh database) would otherwise keep scanning it whole as it grows (an
	// update of streams was planned as a sequential scan); without sequential scans
	// the planner takes the index.
	cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	// No JIT: our statements are short and by key, but their estimated costs pass
	// jit_above_cost (a sync page of a deep queue is estimated at ~190k; a disabled
	// sequential scan adds 10^10), and compiling them cost 0.4 to 0.7 s per call
	// where running took 20 ms (a 72k-entry queue read from its start, PostgreSQL 15).
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 16
	}
	pool, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	// The group commit has connections of its own, planned without nested loops: the
	// append statement joins its CTEs (a row per op or recipient), and as nested
	// loops those joins are quadratic in the ops of a commit (a 100-op append spent
	// 2.5 of 8 ms in one). Its lookups are subqueries, which this leaves alone. Reads
	// keep nested loops: their lateral joins need them, and planning the queue read
	// without them took 1.5 s.
	wcfg := cfg.Copy()
	wcfg.ConnConfig.RuntimeParams["enable_nestloop"] = "off"
	wcfg.MaxConns = int32(max(opts.Committers, 4)) + 1
	writes, err := connect(ctx, wcfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// The side commit's connection does not wait for its WAL to reach the disk: a
	// cursor or receipt commit then costs no fsync of its own, and those commits,
	// which come as often as reads do, stop queueing the messages' commits behind
	// their flushes. Its writes survive any crash of a node; a crash of PostgreSQL
	// itself may lose the last of them (up to 3 × wal_writer_delay, 0.6 s by
	// default): a cursor a little behind (those messages are delivered again) or a
	// receipt told and not kept (the next one moves the watermark past it). No
	// message, and nothing a message's answer depends on, is written there.
	scfg := wcfg.Copy()
	scfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	scfg.MaxConns = 2
	sideWrites, err := connect(ctx, scfg)
	if err != nil {
		writes.Close()
		pool.Close()
		return nil, err
	}
	// The push sender's claims and outcomes do not wait for their WAL to reach the
	// disk either, so that they take no flush from the messages' commits: a crash of
	// PostgreSQL may lose the last of them, and those notifications are sent again
	// (pushes are at least once). Connections open only once a sender runs.
	pcfg := cfg.Copy()
	pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pcfg.MaxConns = 4
	pushPool, err := pgxpool.NewWithConfig(ctx, pcfg) // not pinged: it connects on first use
	if err != nil {
		sideWrites.Close()
		writes.Close()
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, writes: writes, sideWrites: sideWrites, push: pushPool, pushGather: opts.PushGather}
	// Two group commits: the messages' (appends and their queues), and beside it the
	// small writes that no message waits for (cursor moves with their delivered
	// receipts, reads, last-seen times, online rows), so that a receipt for every
	// message does not lengthen the commit each message waits for. One transaction
	// at a time does for the second.
	s.committer = startCommitter(writes, opts, "messages")
	side := opts
	side.Committers = 1
	s.side = startCommitter(sideWrites, side, "side")
	return s, nil
}

func connect(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to database: %w", err)
	}
	return pool, nil
}

// Close stops the committers after the writes already submitted, then closes the pools.
func (s *Store) Close() {
	s.committer.stop()
	s.side.stop()
	s.writes.Close()
	s.sideWrites.Close()
	s.push.Close()
	s.pool.Close()
}

// Pool exposes the connection pool to tests and tools in this module.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrate applies every embedded migration not applied yet, in name order, under an
// advisory lock so that nodes starting together do not race.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7250001)`); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		tag, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING`, base)
		if err != nil {
			return fmt.Errorf("migrating %s: %w", base, err)
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migrating %s: %w", base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// mapErr turns driver errors into persistence errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.ErrNotFound
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return fmt.Errorf("%w: %w", persistence.ErrConflict, err)
	case unreachable(err):
		return fmt.Errorf("%w: %w", persistence.ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err says the server could not be reached or is going
// away (no connection, a connection lost or timed out, a server shutting down or
// out of connections), as opposed to the server refusing a statement.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),                                 // insufficient resources (too many connections)
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, crash, cannot connect now
			return true
		}
		return false
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connect) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
