package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryRowForTest reads from the store's database, for tests that check rows.
func (s *Store) QueryRowForTest(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.pool.QueryRow(ctx, sql, args...)
}
