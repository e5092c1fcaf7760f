package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// SetPushTarget makes provider and token where a user's device is pushed while it
// has no connection, until the Unix ms until (the registering session's expiry;
// later sessions of the device move it on). It replaces the device's previous
// target. With create, a device the store does not know is registered (the
// caller's own, whose token was minted without a login); without,
// persistence.ErrNotFound if the user has no such device.
func (s *Store) SetPushTarget(ctx context.Context, user, device, provider, token string, until int64, create bool) error {
	q := `UPDATE devices SET push_provider = $3, push_token = $4, push_until = $5 WHERE user_id = $1 AND device_id = $2`
	if create {
		q = `INSERT INTO devices (user_id, device_id, push_provider, push_token, push_until) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, device_id) DO UPDATE SET push_provider = $3, push_token = $4, push_until = $5`
	}
	tag, err := s.pool.Exec(ctx, q, user, device, provider, token, until)
	if err != nil {
		return fmt.Errorf("setting push target of %s: %w", user, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("setting push target of %s/%s: %w", user, device, persistence.ErrNotFound)
	}
	return nil
}

// ClearPushTarget ends a device's push target, and drops what was waiting for it
// (idempotent).
func (s *Store) ClearPushTarget(ctx context.Context, user, device string) error {
	_, err := s.pool.Exec(ctx, `WITH c AS (
			UPDATE devices SET push_provider = '', push_token = '', push_until = 0 WHERE user_id = $1 AND device_id = $2
		) DELETE FROM push_outbox WHERE user_id = $1 AND device_id = $2`, user, device)
	if err != nil {
		return fmt.Errorf("clearing push target of %s: %w", user, mapErr(err))
	}
	return nil
}

// PushTarget is a device's push target ("" "" if none, or expired).
func (s *Store) PushTarget(ctx context.Context, user, device string) (provider, token string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT push_provider, push_token FROM devices
		WHERE user_id = $1 AND device_id = $2 AND push_provider <> '' AND push_until > parley_now_ms()`,
		user, device).Scan(&provider, &token)
	if err = mapErr(err); errors.Is(err, persistence.ErrNotFound) {
		return "", "", nil
	}
	return provider, token, err
}

// SetMuted mutes or unmutes a conversation for a user: a muted one makes it no push.
func (s *Store) SetMuted(ctx context.Context, user, conv string, muted bool) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO conversation_settings (user_id, conversation, muted) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, conversation) DO UPDATE SET muted = EXCLUDED.muted`, user, conv, muted)
	if err != nil {
		return fmt.Errorf("setting %s muted for %s: %w", conv, user, mapErr(err))
	}
	return nil
}

// Muted reports whether a user muted a conversation.
func (s *Store) Muted(ctx context.Context, user, conv string) (bool, error) {
	var muted bool
	err := s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT muted FROM conversation_settings
		WHERE user_id = $1 AND conversation = $2), false)`, user, conv).Scan(&muted)
	return muted, mapErr(err)
}

// connectedProbe is a scalar subquery on whether the user in column col has a
// connection attached now, on a node whose lease is live (NULL when not): what
// decides a push, in the append and in the claim.
func connectedProbe(col string) string {
	return `(SELECT 1 FROM presence_online o JOIN node_leases l ON l.holder = o.holder AND l.expires_at >= now()
            WHERE o.user_id = ` + col + ` AND o.connected LIMIT 1)`
}

// claimPushesSQL takes up to $1 notifications due and not held by another node,
// and holds them for $2 ms. Those of users with a connection now are deleted
// instead (a device online cancels them). Each comes with its device's target,
// the device's cursor (for the unread count), and from the queue: its end, the
// entries since the row's from_seq outside muted conversations, and the latest of
// them. The last row, with no user, counts those cancelled.
var claimPushesSQL = `
WITH due AS (
    SELECT p.user_id, p.device_id,
           ` + connectedProbe("p.user_id") + ` IS NOT NULL AS online
    FROM push_outbox p
    WHERE p.next_at <= parley_now_ms() AND p.claimed_until <= parley_now_ms()
    ORDER BY p.next_at LIMIT $1 FOR UPDATE SKIP LOCKED
), cancelled AS (
    DELETE FROM push_outbox p USING due WHERE due.online AND p.user_id = due.user_id AND p.device_id = due.device_id
    RETURNING 1
), claimed AS (
    UPDATE push_outbox p SET claimed_until = parley_now_ms() + $2 FROM due
    WHERE NOT due.online AND p.user_id = due.user_id AND p.device_id = due.device_id
    RETURNING p.*
)
SELECT c.user_id, c.device_id, c.from_seq, COALESCE(q.end_seq, 0), COALESCE(q.n, 0), c.attempts, c.created_at,
       parley_now_ms(), COALESCE(d.push_provider, ''), COALESCE(d.push_token, ''),
       COALESCE((SELECT cursor FROM device_cursors k WHERE k.user_id = c.user_id AND k.device_id = c.device_id), 0),
       (SELECT e.payload FROM conversation_events e WHERE e.conversation = q.conversation AND e.message_id = q.last_id)
FROM claimed c
LEFT JOIN devices d ON d.user_id = c.user_id AND d.device_id = c.device_id
    AND d.push_provider <> '' AND d.push_until > parley_now_ms()
LEFT JOIN LATERAL (
    SELECT max(r.last_seq) OVER () AS end_seq, sum(r.count) FILTER (WHERE NOT r.muted) OVER () AS n,
           r.conversation, r.last_id, r.muted
    FROM (SELECT r.*, (SELECT 1 FROM conversation_settings m WHERE m.user_id = r.user_id
                       AND m.conversation = r.conversation AND m.muted) IS NOT NULL AS muted
          FROM queue_ranges r WHERE r.user_id = c.user_id AND r.last_seq >= c.from_seq) r
    ORDER BY r.muted, r.last_seq DESC LIMIT 1
) q ON true
UNION ALL -- and one row with no user: how many were cancelled
SELECT '', '', 0, 0, count(*), 0, 0, 0, '', '', 0, NULL FROM cancelled`

// ClaimPushes takes up to limit notifications that are due, holding them for
// claim (another node may take one back after that: this one died sending it), and
// returns them, with how many were cancelled because their user is connected.
func (s *Store) ClaimPushes(ctx context.Context, limit int, claim time.Duration) ([]persistence.PushDue, int, error) {
	rows, err := s.push.Query(ctx, claimPushesSQL, limit, claim.Milliseconds())
	if err != nil {
		return nil, 0, fmt.Errorf("claiming pushes: %w", mapErr(err))
	}
	defer rows.Close()
	var out []persistence.PushDue
	cancelled := 0
	for rows.Next() {
		var p persistence.PushDue
		var from, end, count, cursor int64
		var attempts int32
		var payload []byte
		if err := rows.Scan(&p.User, &p.Device, &from, &end, &count, &attempts, &p.CreatedAt, &p.Now,
			&p.Provider, &p.Token, &cursor, &payload); err != nil {
			return nil, 0, mapErr(err)
		}
		if p.User == "" {
			cancelled = int(count)
			continue
		}
		if end < from {
			end = from - 1 // no entries since it started
		}
		p.FromSeq, p.EndSeq, p.Count, p.Attempts = uint64(from), uint64(end), int(count), int(attempts)
		p.Unread = max(end-cursor, 0)
		if payload != nil && count > 0 {
			m := &parleypb.Message{}
			if err := proto.Unmarshal(payload, m); err != nil {
				return nil, 0, fmt.Errorf("decoding stored message: %w", err)
			}
			p.Latest = m
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, mapErr(err)
	}
	return out, cancelled, nil
}

// FinishPush records what became of a claimed notification p. PushSent and
// PushDropped move it on: it starts after the entries it stood for, due a gather
// from now, and the entries that came meanwhile (their commits found the row and
// wrote nothing) are in it. PushRetry makes it due at the store-clock Unix ms next.
// PushEmpty removes it, unless entries came after it (then it moves on): the
// removal locks the user's queue row first, as a commit does, so that no commit
// in flight has left entries to a row that is going. PushDisabled clears the
// device's target and removes the notification, if the target is still the one
// that failed; else the notification goes to the new one.
//
// A row is thus removed only once its device's queue is quiet, and a commit never
// meets one being removed while it counts on it.
func (s *Store) FinishPush(ctx context.Context, p persistence.PushDue, outcome persistence.PushOutcome, next int64) error {
	var err error
	switch outcome {
	case persistence.PushSent, persistence.PushDropped:
		_, err = s.push.Exec(ctx, moveOnSQL, p.User, p.Device, int64(p.EndSeq), s.pushGather.Milliseconds())
	case persistence.PushEmpty:
		err = s.removeIfQuiet(ctx, p)
	case persistence.PushRetry:
		_, err = s.push.Exec(ctx, `UPDATE push_outbox SET attempts = attempts + 1, claimed_until = 0, next_at = $3
			WHERE user_id = $1 AND device_id = $2`, p.User, p.Device, next)
	case persistence.PushDisabled:
		// A device that registered another target meanwhile keeps it, and its
		// notification, due at once for the new target.
		_, err = s.push.Exec(ctx, `WITH c AS (
				UPDATE devices SET push_provider = '', push_token = '', push_until = 0
				WHERE user_id = $1 AND device_id = $2 AND push_provider = $3 AND push_token = $4 RETURNING 1
			), gone AS (
				DELETE FROM push_outbox WHERE user_id = $1 AND device_id = $2 AND EXISTS (SELECT 1 FROM c)
			) UPDATE push_outbox SET claimed_until = 0 WHERE user_id = $1 AND device_id = $2 AND NOT EXISTS (SELECT 1 FROM c)`,
			p.User, p.Device, p.Provider, p.Token)
	}
	if err != nil {
		return fmt.Errorf("finishing push to %s/%s: %w", p.User, p.Device, mapErr(err))
	}
	return nil
}

// moveOnSQL makes a device's notification start after the queue entry $3, due $4
// ms from now.
const moveOnSQL = `UPDATE push_outbox SET from_seq = $3 + 1, attempts = 0, claimed_until = 0,
	created_at = parley_now_ms(), next_at = parley_now_ms() + $4 WHERE user_id = $1 AND device_id = $2`

func (s *Store) removeIfQuiet(ctx context.Context, p persistence.PushDue) error {
	tx, err := s.push.Begin(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT 1 FROM streams WHERE id = $1 FOR UPDATE`, persistence.UserStream(p.User)); err != nil {
		return mapErr(err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM push_outbox WHERE user_id = $1 AND device_id = $2
		AND COALESCE((SELECT max(last_seq) FROM queue_ranges WHERE user_id = $1), 0) <= $3`,
		p.User, p.Device, int64(p.EndSeq))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := tx.Exec(ctx, moveOnSQL, p.User, p.Device, int64(p.EndSeq), s.pushGather.Milliseconds()); err != nil {
			return mapErr(err)
		}
	}
	return mapErr(tx.Commit(ctx))
}
