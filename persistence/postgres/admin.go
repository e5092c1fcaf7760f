package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
)

// adminDevices bounds the devices UserStored lists (the most recent first).
const adminDevices = 100

// UserStored reads what the store holds of a user, for the admin endpoint:
// persistence.ErrNotFound if there is no such user.
func (s *Store) UserStored(ctx context.Context, user string) (persistence.UserStored, error) {
	var u persistence.UserStored
	var holder *string
	var since *int64
	err := s.pool.QueryRow(ctx, `SELECT u.last_seen,
			COALESCE((SELECT max(last_seq) FROM queue_ranges WHERE user_id = $1), 0),
			(SELECT count(*) FROM contacts WHERE user_id = $1),
			(SELECT count(*) FROM push_outbox WHERE user_id = $1),
			p.holder, p.since
		FROM users u LEFT JOIN presence_online p ON p.user_id = u.id WHERE u.id = $1`, user).
		Scan(&u.LastSeen, &u.QueueHead, &u.Contacts, &u.PendingPushes, &holder, &since)
	if err != nil {
		return u, mapErr(err)
	}
	if holder != nil {
		u.OnlineHolder, u.OnlineSince = *holder, *since
	}
	rows, err := s.pool.Query(ctx, `SELECT d.device_id, COALESCE(c.cursor, 0), d.push_provider, d.created_at
		FROM devices d LEFT JOIN device_cursors c ON c.user_id = d.user_id AND c.device_id = d.device_id
		WHERE d.user_id = $1 ORDER BY d.created_at DESC, d.device_id LIMIT $2`, user, adminDevices)
	if err != nil {
		return u, mapErr(err)
	}
	u.Devices, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (persistence.DeviceStored, error) {
		var d persistence.DeviceStored
		var at time.Time
		err := r.Scan(&d.ID, &d.Cursor, &d.PushProvider, &at)
		d.CreatedAt = at.UTC()
		return d, err
	})
	return u, mapErr(err)
}

// MemberBacklogs returns, for each of members, its receipt watermarks in conv and
// how many of conv's messages come after its delivered watermark, counting at
// most upTo.
func (s *Store) MemberBacklogs(ctx context.Context, conv string, members []string, upTo int) ([]persistence.MemberBacklog, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.u, COALESCE(r.delivered, 0), COALESCE(r.read, 0),
			(SELECT count(*) FROM (SELECT 1 FROM conversation_events e
				WHERE e.conversation = $1 AND e.kind = 0 AND e.message_id > COALESCE(r.delivered, 0) LIMIT $3) x)
		FROM unnest($2::text[]) AS m(u)
		LEFT JOIN receipts r ON r.conversation = $1 AND r.user_id = m.u
		ORDER BY m.u`, conv, members, upTo)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (persistence.MemberBacklog, error) {
		var b persistence.MemberBacklog
		err := r.Scan(&b.User, &b.Delivered, &b.Read, &b.Backlog)
		return b, err
	})
	return out, mapErr(err)
}
