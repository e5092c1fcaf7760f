package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// channelWrite is the projection of one channel event, queued after the append
// that stores the event, in the same commit. Each statement writes only if the
// event row is there (the append may have found the stream moved).
type channelWrite struct {
	conv string
	e    *parleypb.ChannelEvent
}

// The statements of channelWrite, per event kind. $1 is the channel's conversation
// id and $2 the event id in each.
const (
	channelStoredSQL = `SELECT 1 FROM conversation_events WHERE conversation = $1 AND message_id = $2`

	// $3 name, $4 owner, $5 mode, $6 public.
	channelCreatedSQL = `
WITH stored AS (` + channelStoredSQL + `), ch AS (
    INSERT INTO channels (id, name, owner, mode, public, created_id, member_count)
    SELECT $1, $3, $4, $5, $6, $2, 1 WHERE EXISTS (SELECT 1 FROM stored)
)
INSERT INTO channel_members (channel, user_id, role, joined_id)
SELECT $1, $4, 2, $2 WHERE EXISTS (SELECT 1 FROM stored)`

	// $3 the users added. A member already there keeps its row.
	channelAddedSQL = `
WITH stored AS (` + channelStoredSQL + `), ins AS (
    INSERT INTO channel_members (channel, user_id, role, joined_id)
    SELECT $1, u, 0, $2 FROM unnest($3::text[]) AS u WHERE EXISTS (SELECT 1 FROM stored)
    ON CONFLICT (channel, user_id) DO NOTHING
    RETURNING 1
)
UPDATE channels SET member_count = member_count + (SELECT count(*) FROM ins) WHERE id = $1`

	// $3 the users removed (never the owner).
	channelRemovedSQL = `
WITH stored AS (` + channelStoredSQL + `), del AS (
    DELETE FROM channel_members
    WHERE channel = $1 AND user_id = ANY($3::text[]) AND role < 2 AND EXISTS (SELECT 1 FROM stored)
    RETURNING 1
)
UPDATE channels SET member_count = member_count - (SELECT count(*) FROM del) WHERE id = $1`

	// $3 the user, $4 admin or not.
	channelAdminSQL = `
UPDATE channel_members SET role = CASE WHEN $4 THEN 1 ELSE 0 END
WHERE channel = $1 AND user_id = $3 AND role < 2 AND EXISTS (` + channelStoredSQL + `)`
)

func (w *channelWrite) queue(b *pgx.Batch) {
	e := w.e
	switch e.Kind {
	case parleypb.ChannelEvent_CHANNEL_CREATED:
		b.Queue(channelCreatedSQL, w.conv, e.EventId, e.Name, e.User, e.Mode, e.Public)
	case parleypb.ChannelEvent_MEMBERS_ADDED:
		b.Queue(channelAddedSQL, w.conv, e.EventId, e.Users)
	case parleypb.ChannelEvent_MEMBERS_REMOVED:
		b.Queue(channelRemovedSQL, w.conv, e.EventId, e.Users)
	case parleypb.ChannelEvent_ADMIN_SET:
		b.Queue(channelAdminSQL, w.conv, e.EventId, e.User, e.Admin)
	}
}

// Channel returns a channel's settings, admins and member count; ErrNotFound if it
// was never created.
func (s *Store) Channel(ctx context.Context, conv string) (persistence.Channel, error) {
	c := persistence.Channel{ID: conv}
	err := s.pool.QueryRow(ctx, `SELECT name, owner, mode, public, member_count, created_id,
		COALESCE(ARRAY(SELECT user_id FROM channel_members WHERE channel = $1 AND role = 1 ORDER BY user_id), '{}'),
		COALESCE((SELECT max(message_id) FROM conversation_events WHERE conversation = $1 AND kind = 0), 0)
		FROM channels WHERE id = $1`, conv).
		Scan(&c.Name, &c.Owner, &c.Mode, &c.Public, &c.MemberCount, &c.CreatedID, &c.Admins, &c.LastMessageID)
	if err != nil {
		return persistence.Channel{}, fmt.Errorf("reading channel %s: %w", conv, mapErr(err))
	}
	return c, nil
}

// ChannelExists reports whether a channel (its id) was created.
func (s *Store) ChannelExists(ctx context.Context, channel string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM channels WHERE id = $1)`, "channel:"+channel).Scan(&ok)
	return ok, mapErr(err)
}

// ChannelRole returns a user's role in a channel; ok false if it is no member.
func (s *Store) ChannelRole(ctx context.Context, conv, user string) (role int, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT role FROM channel_members WHERE channel = $1 AND user_id = $2`, conv, user).Scan(&role)
	if err == pgx.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, mapErr(err)
	}
	return role, true, nil
}

// ChannelRoles returns the roles of those of users who are members of conv.
func (s *Store) ChannelRoles(ctx context.Context, conv string, users []string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, role FROM channel_members WHERE channel = $1 AND user_id = ANY($2::text[])`, conv, users)
	if err != nil {
		return nil, mapErr(err)
	}
	out := map[string]int{}
	var user string
	var role int
	_, err = pgx.ForEachRow(rows, []any{&user, &role}, func() error {
		out[user] = role
		return nil
	})
	return out, mapErr(err)
}

// ChannelsOf returns the channels a user is in (at most limit, by id), each with its
// last message id, the user's read position and the messages after it, counted up
// to unreadMax.
func (s *Store) ChannelsOf(ctx context.Context, user string, limit, unreadMax int) ([]*parleypb.ChannelState, error) {
	rows, err := s.pool.Query(ctx, `
SELECT m.channel, c.name, c.mode, m.role, m.read_id,
       COALESCE((SELECT max(e.message_id) FROM conversation_events e WHERE e.conversation = m.channel AND e.kind = 0), 0),
       (SELECT count(*) FROM (SELECT 1 FROM conversation_events e
            WHERE e.conversation = m.channel AND e.kind = 0 AND e.message_id > m.read_id LIMIT $3) u)
FROM channel_members m JOIN channels c ON c.id = m.channel
WHERE m.user_id = $1 ORDER BY m.channel LIMIT $2`, user, limit, unreadMax)
	if err != nil {
		return nil, fmt.Errorf("reading the channels of %s: %w", user, mapErr(err))
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*parleypb.ChannelState, error) {
		var st parleypb.ChannelState
		var role int
		if err := r.Scan(&st.Channel, &st.Name, &st.Mode, &role, &st.ReadUpTo, &st.LastMessageId, &st.Unread); err != nil {
			return nil, mapErr(err)
		}
		st.Id, st.Role = strings.TrimPrefix(st.Channel, "channel:"), persistence.RoleName(role)
		return &st, nil
	})
}

// ChannelIDsOf returns the conversation ids of the channels a user is in (at most
// limit).
func (s *Store) ChannelIDsOf(ctx context.Context, user string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel FROM channel_members WHERE user_id = $1 ORDER BY channel LIMIT $2`, user, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, mapErr(err)
}

// ChannelReads counts the members whose read position is at or past upTo (0: the
// channel's last message), with the member count.
func (s *Store) ChannelReads(ctx context.Context, conv string, upTo int64) (read, members int64, err error) {
	err = s.pool.QueryRow(ctx, `
WITH at AS (SELECT CASE WHEN $2::bigint > 0 THEN $2::bigint ELSE COALESCE((SELECT max(message_id) FROM conversation_events
        WHERE conversation = $1 AND kind = 0), 0) END AS id)
SELECT (SELECT count(*) FROM channel_members, at WHERE channel = $1 AND read_id >= at.id AND at.id > 0),
       (SELECT count(*) FROM channel_members WHERE channel = $1)`, conv, upTo).Scan(&read, &members)
	return read, members, mapErr(err)
}

// HistoryAfter returns the limit oldest messages of conv with ids above after (and
// below before, when it is not 0), ascending, and whether more follow.
func (s *Store) HistoryAfter(ctx context.Context, conv string, after, before int64, limit int) ([]*parleypb.Message, bool, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND message_id > $2 AND message_id < $3
		ORDER BY message_id LIMIT $4`, conv, after, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("reading history of %s: %w", conv, mapErr(err))
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, false, err
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	return msgs, more, nil
}

// channelReadWrite moves a member's read position in a channel.
type channelReadWrite struct {
	user, conv string
	upTo       int64
}

func (*channelReadWrite) reset() {}

// queueChannelReads moves read positions forward only, for members, to ids that are
// messages of the channel; anything else writes nothing.
func queueChannelReads(b *pgx.Batch, ops []op) int {
	users, convs, ups := make([]string, len(ops)), make([]string, len(ops)), make([]int64, len(ops))
	for i, o := range ops {
		w := o.arg.(*channelReadWrite)
		users[i], convs[i], ups[i] = w.user, w.conv, w.upTo
	}
	b.Queue(`UPDATE channel_members m SET read_id = r.up_to
		FROM (SELECT DISTINCT ON (channel, user_id) * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(user_id, channel, up_to)
		      ORDER BY channel, user_id, up_to DESC) r
		WHERE m.channel = r.channel AND m.user_id = r.user_id AND r.up_to > m.read_id
		  AND EXISTS (SELECT 1 FROM conversation_events e WHERE e.conversation = r.channel AND e.message_id = r.up_to AND e.kind = 0)`,
		users, convs, ups)
	return len(ops)
}

// SaveChannelRead moves a member's read position in a channel to upTo in the next
// side commit, if it is a message of the channel past the stored position (else
// nothing is written). done (may be nil) is called on a committer goroutine.
func (s *Store) SaveChannelRead(user, conv string, upTo int64, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.side.submit(op{kind: kindChannelRead, key: user + "\x00" + conv,
		arg: &channelReadWrite{user: user, conv: conv, upTo: upTo}, done: done})
}
