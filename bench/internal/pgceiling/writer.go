package pgceiling

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// insertSQL writes one batch in one statement; %s is the quoted table.
const insertSQL = `INSERT INTO %s (conversation, version, message_id, sender, client_id, ts, payload, kind)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bytea[], $8::smallint[])`

// writer is one connection writing batches until the deadline.
type writer struct {
	conn   *pgx.Conn
	cfg    Config
	schema string
	gen    *rowGen
	batch  batch
	rows   int64           // rows of committed statements
	stmts  []time.Duration // each committed statement's latency
}

// write makes one statement of rows and commits it, on its own, with the
// configured method.
func (w *writer) write(ctx context.Context) error {
	w.gen.fill(&w.batch, w.cfg.RowsPerStatement)
	start := time.Now()
	var n int64
	var err error
	if w.cfg.Method == MethodCopy {
		n, err = w.conn.CopyFrom(ctx, tableName(w.schema), columns, newCopySource(&w.batch))
	} else {
		n, err = w.insert(ctx)
	}
	if err != nil {
		return fmt.Errorf("writing %d rows with %s: %w", w.batch.len(), w.cfg.Method, err)
	}
	if n != int64(w.batch.len()) {
		return fmt.Errorf("writing %d rows with %s: server wrote %d", w.batch.len(), w.cfg.Method, n)
	}
	w.stmts = append(w.stmts, time.Since(start))
	w.rows += n
	return nil
}

func (w *writer) insert(ctx context.Context) (int64, error) {
	b := &w.batch
	tag, err := w.conn.Exec(ctx, fmt.Sprintf(insertSQL, tableName(w.schema).Sanitize()),
		b.conversation, b.version, b.messageID, b.sender, b.clientID, b.ts, b.payload, b.kind)
	return tag.RowsAffected(), err
}

// run writes statements until deadline; the statement under way at the
// deadline still completes and counts. ctx cancels it at once.
func (w *writer) run(ctx context.Context, deadline time.Time) error {
	for time.Now().Before(deadline) {
		if err := w.write(ctx); err != nil {
			return err
		}
	}
	return nil
}
