package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
)

func TestDeviceGenerations(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.DatabaseURL(t), Options{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.NoError(t, s.CreateUser(ctx, persistence.User{ID: "alice", DisplayName: "Alice", PasswordHash: "x"}))

	gen, err := s.DeviceGeneration(ctx, "alice", "phone")
	require.NoError(t, err)
	require.Zero(t, gen, "an unknown device is at generation 0")
	require.NoError(t, s.AddDevice(ctx, "alice", "phone", 0))
	gen, err = s.DeviceGeneration(ctx, "alice", "phone")
	require.NoError(t, err)
	require.Zero(t, gen)

	for want := int64(1); want <= 2; want++ {
		gen, err = s.RevokeDevice(ctx, "alice", "phone")
		require.NoError(t, err)
		require.Equal(t, want, gen)
	}
	require.NoError(t, s.AddDevice(ctx, "alice", "phone", 0), "a login again keeps the generation")
	gen, err = s.DeviceGeneration(ctx, "alice", "phone")
	require.NoError(t, err)
	require.EqualValues(t, 2, gen)

	gen, err = s.RevokeDevice(ctx, "alice", "tablet")
	require.NoError(t, err)
	require.EqualValues(t, 1, gen, "revoking a device never registered registers it past 0")
	other, err := s.DeviceGeneration(ctx, "alice", "laptop")
	require.NoError(t, err)
	require.Zero(t, other)

	_, err = s.RevokeDevice(ctx, "nobody", "d1")
	require.ErrorIs(t, err, persistence.ErrNotFound)
}

// The migration drops a token key kept by older versions in the settings table.
func TestMigrationDropsTokenSecret(t *testing.T) {
	ctx := context.Background()
	url := testenv.DatabaseURL(t)
	s, err := Open(ctx, url, Options{})
	require.NoError(t, err)
	_, err = s.pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ('token_secret', 'old key'), ('other', 'x')`)
	require.NoError(t, err)
	_, err = s.pool.Exec(ctx, `DELETE FROM schema_migrations WHERE name = '0005_device_tokens.sql';
		ALTER TABLE devices DROP COLUMN token_generation`)
	require.NoError(t, err)
	s.Close()

	s, err = Open(ctx, url, Options{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	var keys []string
	rows, err := s.pool.Query(ctx, `SELECT key FROM settings ORDER BY key`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"other"}, keys)
}
