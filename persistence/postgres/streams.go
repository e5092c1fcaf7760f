package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// AppendConversation writes new messages to a conversation's stream in the next
// group commit. persistence.ErrConflict means the stream is past a.Expected.
func (s *Store) AppendConversation(ctx context.Context, a persistence.ConversationAppend) (persistence.ConversationAppended, error) {
	n := len(a.Messages)
	if a.Event != nil {
		n++
	}
	ids, senders, clients := make([]int64, 0, n), make([]string, 0, n), make([]string, 0, n)
	ts, payloads, kinds := make([]int64, 0, n), make([][]byte, 0, n), make([]int16, 0, n)
	for _, m := range a.Messages {
		p, err := proto.Marshal(m)
		if err != nil {
			return persistence.ConversationAppended{}, fmt.Errorf("encoding message: %w", err)
		}
		ids, senders, clients = append(ids, m.MessageId), append(senders, m.From), append(clients, m.ClientId)
		ts, payloads, kinds = append(ts, m.Ts), append(payloads, p), append(kinds, 0)
	}
	if e := a.Event; e != nil {
		p, err := proto.Marshal(e)
		if err != nil {
			return persistence.ConversationAppended{}, fmt.Errorf("encoding event: %w", err)
		}
		ids, senders, clients = append(ids, e.EventId), append(senders, e.By), append(clients, fmt.Sprint("event:", e.EventId))
		ts, payloads, kinds = append(ts, e.Ts), append(payloads, p), append(kinds, int16(e.Kind))
	}
	stream := persistence.ConversationStream(a.Conversation)
	w := &convWrite{conv: a.Conversation, expected: int64(a.Expected), ids: ids, ts: ts,
		senders: senders, clients: clients, payloads: payloads, kinds: kinds}
	if err := s.committer.submit(ctx, op{kind: kindConversation, key: stream, arg: w}); err != nil {
		return persistence.ConversationAppended{}, err
	}
	if w.version == nil {
		return persistence.ConversationAppended{}, fmt.Errorf("appending to %s at %d: %w", a.Conversation, a.Expected, persistence.ErrConflict)
	}
	return persistence.ConversationAppended{Version: uint64(*w.version), Inserted: w.inserted}, nil
}

// AppendUser writes messages to a user's sync queue in the next group commit,
// assigning consecutive seqs to the ones not queued yet.
func (s *Store) AppendUser(ctx context.Context, a persistence.UserAppend) (persistence.UserAppended, error) {
	n := len(a.Messages)
	ids, convs, payloads := make([]int64, n), make([]string, n), make([][]byte, n)
	byID := make(map[int64]*parleypb.Message, n)
	for i, m := range a.Messages {
		p, err := proto.Marshal(m)
		if err != nil {
			return persistence.UserAppended{}, fmt.Errorf("encoding message: %w", err)
		}
		ids[i], convs[i], payloads[i] = m.MessageId, m.Conversation, p
		byID[m.MessageId] = m
	}
	stream := persistence.UserStream(a.User)
	w := &userWrite{user: a.User, expected: int64(a.Expected), ids: ids, convs: convs, payloads: payloads}
	if err := s.committer.submit(ctx, op{kind: kindUser, key: stream, arg: w}); err != nil {
		return persistence.UserAppended{}, err
	}
	if w.version == nil {
		return persistence.UserAppended{}, fmt.Errorf("appending to queue of %s at %d: %w", a.User, a.Expected, persistence.ErrConflict)
	}
	out := persistence.UserAppended{Version: uint64(*w.version), Entries: make([]*parleypb.Message, len(w.seqs))}
	for i, seq := range w.seqs {
		e := proto.Clone(byID[w.written[i]]).(*parleypb.Message)
		e.Seq = uint64(seq)
		out.Entries[i] = e
	}
	return out, nil
}

// StreamVersion is a stream's current version (0 when it has none yet).
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM streams WHERE id = $1`, stream).Scan(&v)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	return uint64(v), mapErr(err)
}

// UserVersion is the last seq of a user's sync queue.
func (s *Store) UserVersion(ctx context.Context, user string) (uint64, error) {
	return s.StreamVersion(ctx, persistence.UserStream(user))
}

// ConversationVersion is a conversation stream's version.
func (s *Store) ConversationVersion(ctx context.Context, conv string) (uint64, error) {
	return s.StreamVersion(ctx, persistence.ConversationStream(conv))
}

// ReadQueue returns up to limit entries of a user's sync queue after seq, in seq order.
func (s *Store) ReadQueue(ctx context.Context, user string, after uint64, limit int) ([]*parleypb.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, payload FROM user_entries
		WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, user, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("reading queue of %s: %w", user, mapErr(err))
	}
	return collectMessages(rows, true)
}

// ReadConversation returns up to limit messages of a conversation with ids above
// after, ascending.
func (s *Store) ReadConversation(ctx context.Context, conv string, after int64, limit int) ([]*parleypb.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT 0::bigint, payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND message_id > $2 ORDER BY message_id LIMIT $3`, conv, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", conv, mapErr(err))
	}
	return collectMessages(rows, false)
}

// History returns the limit messages just before the id before (0: the newest)
// and above the id after (a member's join; 0 for all), ascending, and whether older
// ones exist (above after).
func (s *Store) History(ctx context.Context, conv string, before, after int64, limit int) ([]*parleypb.Message, bool, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT 0::bigint, payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND message_id < $2 AND message_id > $3
		ORDER BY message_id DESC LIMIT $4`, conv, before, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("reading history of %s: %w", conv, mapErr(err))
	}
	msgs, err := collectMessages(rows, false)
	if err != nil {
		return nil, false, err
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// LastMessageID is the highest message id in a conversation (0 if none).
func (s *Store) LastMessageID(ctx context.Context, conv string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(message_id), 0) FROM conversation_events
		WHERE conversation = $1 AND kind = 0`, conv).Scan(&id)
	return id, mapErr(err)
}

// FindByClientID returns the message a sender committed with a client id.
func (s *Store) FindByClientID(ctx context.Context, conv, sender, clientID string) (*parleypb.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT 0::bigint, payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND sender = $2 AND client_id = $3`, conv, sender, clientID)
	if err != nil {
		return nil, mapErr(err)
	}
	msgs, err := collectMessages(rows, false)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, persistence.ErrNotFound
	}
	return msgs[0], nil
}

func collectMessages(rows pgx.Rows, withSeq bool) ([]*parleypb.Message, error) {
	defer rows.Close()
	var out []*parleypb.Message
	for rows.Next() {
		var seq int64
		var payload []byte
		if err := rows.Scan(&seq, &payload); err != nil {
			return nil, mapErr(err)
		}
		m := &parleypb.Message{}
		if err := proto.Unmarshal(payload, m); err != nil {
			return nil, fmt.Errorf("decoding stored message: %w", err)
		}
		if withSeq {
			m.Seq = uint64(seq)
		}
		out = append(out, m)
	}
	return out, mapErr(rows.Err())
}

// SaveCursor moves a device's cursor forward (never back) in the next group commit.
func (s *Store) SaveCursor(ctx context.Context, user, device string, cursor uint64) error {
	return s.committer.submit(ctx, op{kind: kindCursor, key: user + "/" + device,
		arg: &cursorWrite{user: user, device: device, cursor: int64(cursor)}})
}

// Cursors returns a user's device cursors.
func (s *Store) Cursors(ctx context.Context, user string) (map[string]uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT device_id, cursor FROM device_cursors WHERE user_id = $1`, user)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var d string
		var c int64
		if err := rows.Scan(&d, &c); err != nil {
			return nil, mapErr(err)
		}
		out[d] = uint64(c)
	}
	return out, mapErr(rows.Err())
}

// SaveSnapshot stores a stream's snapshot in the next group commit, unless a newer
// one is stored already.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, version uint64, state []byte) error {
	return s.committer.submit(ctx, op{kind: kindSnapshot, key: stream,
		arg: &snapshotWrite{stream: stream, version: int64(version), state: state}})
}

// Snapshot loads a stream's snapshot; persistence.ErrNotFound if it has none.
func (s *Store) Snapshot(ctx context.Context, stream string) (uint64, []byte, error) {
	var v int64
	var state []byte
	err := s.pool.QueryRow(ctx, `SELECT version, state FROM snapshots WHERE stream = $1`, stream).Scan(&v, &state)
	return uint64(v), state, mapErr(err)
}

// ClearOutbox records that every member's queue has a conversation's messages up to
// upTo, in the next group commit.
func (s *Store) ClearOutbox(ctx context.Context, conv string, upTo int64) error {
	return s.committer.submit(ctx, op{kind: kindOutboxClear, key: persistence.ConversationStream(conv),
		arg: &outboxClear{conv: conv, upTo: upTo}})
}

// PendingOutbox lists conversations whose fan-out has been pending for longer than
// age: their grains must be woken to re-drive it.
func (s *Store) PendingOutbox(ctx context.Context, age time.Duration, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT conversation FROM outbox
		WHERE updated_at < now() - $1::interval ORDER BY updated_at LIMIT $2`,
		fmt.Sprintf("%d milliseconds", age.Milliseconds()), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// OutboxPending reports whether a conversation has fan-out that was never
// acknowledged by every member.
func (s *Store) OutboxPending(ctx context.Context, conv string) (bool, error) {
	var pending bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE conversation = $1)`, conv).Scan(&pending)
	return pending, mapErr(err)
}

// GroupEvents returns a group's membership events in stream order.
func (s *Store) GroupEvents(ctx context.Context, conv string) ([]*parleypb.GroupEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT payload FROM conversation_events
		WHERE conversation = $1 AND kind <> 0 ORDER BY version`, conv)
	if err != nil {
		return nil, fmt.Errorf("reading membership of %s: %w", conv, mapErr(err))
	}
	defer rows.Close()
	var out []*parleypb.GroupEvent
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			return nil, mapErr(err)
		}
		e := &parleypb.GroupEvent{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return nil, fmt.Errorf("decoding membership event: %w", err)
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}
