package pgceiling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// cleanupTimeout bounds dropping the scratch schema, which also runs after ctx
// is cancelled.
const cleanupTimeout = 30 * time.Second

// Measure runs one measurement (see the package doc). The scratch schema is
// dropped before it returns, whatever happened; an error dropping it is joined
// to the result's error.
func Measure(ctx context.Context, cfg Config) (res Result, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return Result{}, fmt.Errorf("connecting: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	server, err := serverInfo(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	schema := newSchemaName()
	defer func() { err = errors.Join(err, dropScratch(ctx, admin, cfg.DatabaseURL, schema)) }()
	if err := createSchema(ctx, admin, schema); err != nil {
		return Result{}, err
	}
	res, err = measureIn(ctx, admin, cfg, schema)
	res.Server = server
	return res, err
}

// measureIn connects the writers, runs them and checks the table afterwards.
func measureIn(ctx context.Context, admin *pgx.Conn, cfg Config, schema string) (Result, error) {
	writers, err := connectWriters(ctx, cfg, schema)
	defer closeWriters(writers)
	if err != nil {
		return Result{}, err
	}
	walStart, err := walLSN(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	elapsed, err := runWriters(ctx, writers, cfg.Duration)
	if err != nil {
		return Result{}, err
	}
	res := summarize(cfg, writers, elapsed)
	return res, checkTable(ctx, admin, schema, walStart, &res)
}

// checkTable counts the rows in the table, which must be the rows written, and
// records the WAL written since walStart and the table's size.
func checkTable(ctx context.Context, admin *pgx.Conn, schema string, walStart int64, res *Result) error {
	walEnd, err := walLSN(ctx, admin)
	if err != nil {
		return err
	}
	res.WALBytes = walEnd - walStart
	counted, err := countRows(ctx, admin, schema)
	if err != nil {
		return err
	}
	if counted != res.Rows {
		return fmt.Errorf("pgceiling: the table holds %d rows, the writers committed %d", counted, res.Rows)
	}
	res.TableBytes, err = tableBytes(ctx, admin, schema)
	return err
}

// connectWriters opens one connection per writer. On error it returns the
// writers connected so far, for closeWriters.
func connectWriters(ctx context.Context, cfg Config, schema string) ([]*writer, error) {
	writers := make([]*writer, 0, cfg.Writers)
	for i := range cfg.Writers {
		conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return writers, fmt.Errorf("connecting writer %d: %w", i, err)
		}
		writers = append(writers, &writer{conn: conn, cfg: cfg, schema: schema,
			gen: newRowGen(i, cfg.Writers, cfg.Conversations, cfg.PayloadBytes)})
	}
	return writers, nil
}

func closeWriters(writers []*writer) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, w := range writers {
		_ = w.conn.Close(ctx)
	}
}

// runWriters runs every writer until d has passed and returns the time from
// their start to the last one's end. The first error stops them all.
func runWriters(ctx context.Context, writers []*writer, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, w := range writers {
		wg.Go(func() {
			if err := w.run(ctx, deadline); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return elapsed, err
	}
	return elapsed, nil
}

// summarize adds up the writers' rows and statements.
func summarize(cfg Config, writers []*writer, elapsed time.Duration) Result {
	res := Result{Method: cfg.Method, Writers: cfg.Writers, RowsPerStatement: cfg.RowsPerStatement,
		PayloadBytes: cfg.PayloadBytes, Conversations: cfg.Conversations, Elapsed: elapsed}
	var stmts []time.Duration
	for _, w := range writers {
		res.Rows += w.rows
		stmts = append(stmts, w.stmts...)
	}
	res.Statements = int64(len(stmts))
	res.Statement = latency(stmts)
	res.RowsPerSec = float64(res.Rows) / elapsed.Seconds()
	return res
}

// serverInfo reads the server's version and commit settings.
func serverInfo(ctx context.Context, conn *pgx.Conn) (Server, error) {
	var s Server
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit')`).Scan(&s.Version, &s.FSync, &s.SynchronousCommit)
	if err != nil {
		return Server{}, fmt.Errorf("reading server settings: %w", err)
	}
	return s, nil
}

// walLSN is the server's current WAL insert position, in bytes.
func walLSN(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var lsn int64
	if err := conn.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").Scan(&lsn); err != nil {
		return 0, fmt.Errorf("reading WAL position: %w", err)
	}
	return lsn, nil
}

// dropScratch drops the scratch schema with a context of its own, since ctx may
// be cancelled. admin is used if still open, else a new connection.
func dropScratch(ctx context.Context, admin *pgx.Conn, url, schema string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if admin.IsClosed() {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return fmt.Errorf("connecting to drop scratch schema %s: %w", schema, err)
		}
		defer conn.Close(ctx)
		admin = conn
	}
	return dropSchema(ctx, admin, schema)
}
