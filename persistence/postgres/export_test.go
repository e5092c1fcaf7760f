package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryRowForTest reads from the store's database, for tests that check rows.
func (s *Store) QueryRowForTest(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.pool.QueryRow(ctx, sql, args...)
}

// CommitSettingForTest reads a setting on a connection of the messages' group
// commit (side false) or of the side commit (side true).
func (s *Store) CommitSettingForTest(ctx context.Context, side bool, name string) (string, error) {
	p := s.writes
	if side {
		p = s.sideWrites
	}
	var v string
	err := p.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v)
	return v, err
}
