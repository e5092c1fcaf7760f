package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/persistence"
)

// CreateUser adds an account, and its sync queue's stream;
// persistence.ErrConflict if the id is taken.
func (s *Store) CreateUser(ctx context.Context, u persistence.User) error {
	_, err := s.pool.Exec(ctx, `WITH u AS (
		INSERT INTO users (id, display_name, password_hash) VALUES ($1, $2, $3) RETURNING id
	) INSERT INTO streams (id, version) SELECT 'u:' || id, 0 FROM u ON CONFLICT (id) DO NOTHING`,
		u.ID, u.DisplayName, u.PasswordHash)
	if err != nil {
		return fmt.Errorf("creating user %s: %w", u.ID, mapErr(err))
	}
	return nil
}

// User loads an account; persistence.ErrNotFound if there is none.
func (s *Store) User(ctx context.Context, id string) (persistence.User, error) {
	u := persistence.User{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT display_name, password_hash, last_seen FROM users WHERE id = $1`, id).
		Scan(&u.DisplayName, &u.PasswordHash, &u.LastSeen)
	if err != nil {
		return persistence.User{}, fmt.Errorf("loading user %s: %w", id, mapErr(err))
	}
	return u, nil
}

// UsersExist reports which of ids are accounts.
func (s *Store) UsersExist(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM users WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, mapErr(err)
		}
		out[id] = true
	}
	return out, mapErr(rows.Err())
}

// SetLastSeen records when a user was last connected (Unix ms; it never moves
// back), in the next group commit; done (may be nil) is called once it has
// committed or failed, on a committer goroutine.
func (s *Store) SetLastSeen(id string, ms int64, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.side.submit(op{kind: kindLastSeen, key: id, arg: &lastSeenWrite{user: id, ms: ms}, done: done})
}

// AddDevice registers a device of a user for a new session that ends at the Unix
// ms until (idempotent): a push target the device has lasts until then too.
func (s *Store) AddDevice(ctx context.Context, user, device string, until int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO devices (user_id, device_id) VALUES ($1, $2)
		ON CONFLICT (user_id, device_id) DO UPDATE SET push_until = GREATEST(devices.push_until, $3)
		WHERE devices.push_provider <> ''`, user, device, until)
	if err != nil {
		return fmt.Errorf("adding device of %s: %w", user, mapErr(err))
	}
	return nil
}

// DeviceGeneration is the token generation of a user's device (see
// auth.Sessions); 0 for a device that is not registered.
func (s *Store) DeviceGeneration(ctx context.Context, user, device string) (int64, error) {
	var gen int64
	err := s.pool.QueryRow(ctx, `SELECT token_generation FROM devices WHERE user_id = $1 AND device_id = $2`,
		user, device).Scan(&gen)
	if err = mapErr(err); errors.Is(err, persistence.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading token generation of %s: %w", user, err)
	}
	return gen, nil
}

// RevokeDevice moves the token generation of a user's device on (registering the
// device if it was not) and returns the new generation: the tokens issued for it
// so far stop being valid, and its push target ends. persistence.ErrNotFound if the user does not exist.
func (s *Store) RevokeDevice(ctx context.Context, user, device string) (int64, error) {
	var gen int64
	err := s.pool.QueryRow(ctx, `WITH d AS (
			INSERT INTO devices (user_id, device_id, token_generation)
			SELECT id, $2, 1 FROM users WHERE id = $1
			ON CONFLICT (user_id, device_id) DO UPDATE SET token_generation = devices.token_generation + 1,
				push_provider = '', push_token = '', push_until = 0
			RETURNING token_generation
		), p AS (
			DELETE FROM push_outbox WHERE user_id = $1 AND device_id = $2
		) SELECT token_generation FROM d`, user, device).Scan(&gen)
	if err != nil {
		return 0, fmt.Errorf("revoking tokens of %s: %w", user, mapErr(err))
	}
	return gen, nil
}

// Setting returns the value stored under key, storing make()'s result first if
// there is none. Every node that asks gets the same value.
func (s *Store) Setting(ctx context.Context, key string, make func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if err == nil {
		return v, nil
	}
	if mapErr(err) != persistence.ErrNotFound {
		return nil, mapErr(err)
	}
	fresh, err := make()
	if err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, key, fresh); err != nil {
		return nil, mapErr(err)
	}
	err = s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	return v, mapErr(err)
}
