package postgres

import (
	"context"
	"fmt"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// AppendConversation writes new messages to a conversation's stream, and to its
// recipients' sync queues, in the next group commit, and waits for it.
// persistence.ErrConflict means the stream is past a.Expected.
func (s *Store) AppendConversation(ctx context.Context, a persistence.ConversationAppend) (persistence.ConversationAppended, error) {
	res := make(chan appendResult, 1)
	s.AppendConversationAsync(a, func(r persistence.ConversationAppended, err error) { res <- appendResult{r, err} })
	select {
	case r := <-res:
		return r.ConversationAppended, r.err
	case <-ctx.Done():
		return persistence.ConversationAppended{}, ctx.Err()
	}
}

type appendResult struct {
	persistence.ConversationAppended
	err error
}

// AppendConversationAsync is AppendConversation without the wait: done is called
// once the commit has run (on a committer goroutine: it must not block), or at once
// if a cannot be encoded or the store is closed.
func (s *Store) AppendConversationAsync(a persistence.ConversationAppend, done func(persistence.ConversationAppended, error)) {
	w, err := newConvWrite(a)
	if err != nil {
		done(persistence.ConversationAppended{}, err)
		return
	}
	w.pushGather = s.pushGather.Milliseconds()
	locks := make([]string, len(a.Recipients))
	for i, u := range a.Recipients {
		locks[i] = persistence.UserStream(u)
	}
	s.committer.submit(op{kind: kindConversation, key: persistence.ConversationStream(a.Conversation), locks: locks,
		arg: w, done: func(err error) {
			if err == nil && w.version == nil {
				err = fmt.Errorf("appending to %s at %d: %w", a.Conversation, a.Expected, persistence.ErrConflict)
			}
			if err != nil {
				done(persistence.ConversationAppended{}, err)
				return
			}
			out := persistence.ConversationAppended{Version: uint64(*w.version), Inserted: w.inserted}
			if len(w.queued) > 0 {
				out.LastSeq = make(map[string]uint64, len(w.queued))
				for i, u := range w.queued {
					out.LastSeq[u] = uint64(w.lastSeqs[i])
				}
			}
			done(out, nil)
		}})
}

func newConvWrite(a persistence.ConversationAppend) (*convWrite, error) {
	n := len(a.Messages)
	if a.Event != nil || a.ChannelEvent != nil {
		n++
	}
	w := &convWrite{conv: a.Conversation, expected: int64(a.Expected), recipients: a.Recipients,
		ids: make([]int64, 0, n), senders: make([]string, 0, n), clients: make([]string, 0, n),
		ts: make([]int64, 0, n), payloads: make([][]byte, 0, n), kinds: make([]int16, 0, n)}
	add := func(id int64, sender, client string, ts int64, p []byte, kind int16) {
		w.ids, w.senders, w.clients = append(w.ids, id), append(w.senders, sender), append(w.clients, client)
		w.ts, w.payloads, w.kinds = append(w.ts, ts), append(w.payloads, p), append(w.kinds, kind)
	}
	for _, m := range a.Messages {
		p, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encoding message: %w", err)
		}
		add(m.MessageId, m.From, m.ClientId, m.Ts, p, 0)
	}
	if e := a.Event; e != nil {
		p, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encoding event: %w", err)
		}
		add(e.EventId, e.By, fmt.Sprint("event:", e.EventId), e.Ts, p, int16(e.Kind))
		w.event = e.EventId
		switch e.Kind {
		case parleypb.GroupEvent_CREATED:
			w.joined = append([]string{e.User}, e.Members...)
		case parleypb.GroupEvent_MEMBER_ADDED:
			w.joined = []string{e.User}
		case parleypb.GroupEvent_MEMBER_REMOVED:
			w.left = []string{e.User}
		}
	}
	if e := a.ChannelEvent; e != nil {
		p, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encoding event: %w", err)
		}
		add(e.EventId, e.By, fmt.Sprint("event:", e.EventId), e.Ts, p, int16(e.Kind))
		w.event, w.channel = e.EventId, &channelWrite{conv: a.Conversation, e: e}
	}
	return w, nil
}

// queuePageSQL reads a page of a user's queue ($1) after a seq (head.after), with
// the queue's end: the range rows after it, each resolved to its messages in the
// conversation's stream. $2 is the page size. head is a one-row CTE (after, cursor)
// given by the caller. A page with no entries is one row with NULL seq.
const queuePageSQL = `
SELECT head.cursor, COALESCE((SELECT max(last_seq) FROM queue_ranges WHERE user_id = $1), 0), p.seq, p.payload
FROM head LEFT JOIN LATERAL (
    SELECT q.last_seq - q.count + e.n AS seq, e.payload
    FROM (SELECT * FROM queue_ranges WHERE user_id = $1 AND last_seq > head.after ORDER BY last_seq LIMIT $2) q
    CROSS JOIN LATERAL (
        SELECT ce.payload, row_number() OVER (ORDER BY ce.message_id) AS n
        FROM conversation_events ce
        WHERE ce.conversation = q.conversation AND ce.kind = 0 AND ce.message_id BETWEEN q.first_id AND q.last_id
    ) e
    WHERE q.last_seq - q.count + e.n > head.after
    ORDER BY 1 LIMIT $2
) p ON true
ORDER BY p.seq`

// ReadQueue returns up to limit entries of a user's sync queue after seq, in seq
// order, and the queue's end.
func (s *Store) ReadQueue(ctx context.Context, user string, after uint64, limit int) (persistence.QueuePage, error) {
	rows, err := s.pool.Query(ctx, `WITH head AS (SELECT $3::bigint AS after, 0::bigint AS cursor)`+queuePageSQL,
		user, limit, int64(after))
	if err != nil {
		return persistence.QueuePage{}, fmt.Errorf("reading queue of %s: %w", user, mapErr(err))
	}
	return collectPage(rows)
}

// ReadQueueAtCursor is ReadQueue after a device's stored cursor, which it returns
// too: a connection's first sync in one round trip.
func (s *Store) ReadQueueAtCursor(ctx context.Context, user, device string, limit int) (persistence.QueuePage, error) {
	rows, err := s.pool.Query(ctx, `WITH head AS (SELECT c AS after, c AS cursor FROM (SELECT COALESCE(
		(SELECT cursor FROM device_cursors WHERE user_id = $1 AND device_id = $3), 0) AS c) x)`+queuePageSQL,
		user, limit, device)
	if err != nil {
		return persistence.QueuePage{}, fmt.Errorf("reading queue of %s: %w", user, mapErr(err))
	}
	return collectPage(rows)
}

func collectPage(rows pgx.Rows) (persistence.QueuePage, error) {
	defer rows.Close()
	var page persistence.QueuePage
	for rows.Next() {
		var cursor, end int64
		var seq *int64
		var payload []byte
		if err := rows.Scan(&cursor, &end, &seq, &payload); err != nil {
			return persistence.QueuePage{}, mapErr(err)
		}
		page.Cursor, page.End = uint64(cursor), uint64(end)
		if seq == nil {
			continue
		}
		m := &parleypb.Message{}
		if err := proto.Unmarshal(payload, m); err != nil {
			return persistence.QueuePage{}, fmt.Errorf("decoding stored message: %w", err)
		}
		m.Seq = uint64(*seq)
		page.Entries = append(page.Entries, m)
	}
	return page, mapErr(rows.Err())
}

// History returns the limit messages just before the id before (0: the newest)
// and above the id after (a member's join; 0 for all), ascending, and whether older
// ones exist (above after).
func (s *Store) History(ctx context.Context, conv string, before, after int64, limit int) ([]*parleypb.Message, bool, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND message_id < $2 AND message_id > $3
		ORDER BY message_id DESC LIMIT $4`, conv, before, after, limit+1)
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
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// ConversationHead is a conversation stream's version and the highest id in it
// (messages and membership events alike; 0 when empty).
func (s *Store) ConversationHead(ctx context.Context, conv string) (version uint64, lastID int64, err error) {
	var v int64
	err = s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT max(version) FROM conversation_events WHERE conversation = $1), 0),
		COALESCE((SELECT max(message_id) FROM conversation_events WHERE conversation = $1), 0)`, conv).Scan(&v, &lastID)
	return uint64(v), lastID, mapErr(err)
}

// FindByClientID returns the message a sender committed with a client id.
func (s *Store) FindByClientID(ctx context.Context, conv, sender, clientID string) (*parleypb.Message, error) {
	rows, err := s.pool.Query(ctx, `SELECT payload FROM conversation_events
		WHERE conversation = $1 AND kind = 0 AND sender = $2 AND client_id = $3`, conv, sender, clientID)
	if err != nil {
		return nil, mapErr(err)
	}
	msgs, err := collectMessages(rows)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, persistence.ErrNotFound
	}
	return msgs[0], nil
}

// collectMessages decodes rows of one column, a stored message.
func collectMessages(rows pgx.Rows) ([]*parleypb.Message, error) {
	defer rows.Close()
	var out []*parleypb.Message
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			return nil, mapErr(err)
		}
		m := &parleypb.Message{}
		if err := proto.Unmarshal(payload, m); err != nil {
			return nil, fmt.Errorf("decoding stored message: %w", err)
		}
		out = append(out, m)
	}
	return out, mapErr(rows.Err())
}

// SaveCursor moves a device's cursor forward (never back; 0 moves none) in the
// next side commit, with the delivered watermarks the move makes (see
// deliveredSQL) and reads of direct conversations that the caller checked (Status
// Read; see readMarksSQL). done (may be nil) is called once it has committed or failed, on a
// committer goroutine.
func (s *Store) SaveCursor(user, device string, cursor uint64, delivered []persistence.ReceiptMove, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.side.submit(op{kind: kindCursor, key: user + "/" + device,
		arg: &cursorWrite{user: user, device: device, cursor: int64(cursor), delivered: delivered}, done: done})
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

// GroupExists reports whether a group was created: its stream holds a CREATED event.
func (s *Store) GroupExists(ctx context.Context, group string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM conversation_events
		WHERE conversation = $1 AND kind = $2)`, "group:"+group, int16(parleypb.GroupEvent_CREATED)).Scan(&ok)
	return ok, mapErr(err)
}
