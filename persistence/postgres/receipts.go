package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
)

// receiptSpan bounds the seqs before a cursor move that its delivered receipts are
// computed over: a device that acknowledges a long replay at once costs one bounded
// statement. Conversations covered only before the span get no receipt from that
// move (the next message in them gives one).
const receiptSpan = 10_000

// deliveredSQL turns cursor moves into delivered receipts. Parameters, per move:
// $1 user, $2 device, $3 the cursor the mover had, $4 the new cursor; $5 is
// receiptSpan. It runs before the cursor upsert of the same commit, so the stored
// cursor it reads is the one before the move.
//
// The queue's range rows that the move covers ((from, upTo], from being the
// highest of the mover's old cursor, the stored one and upTo-$5) give, per
// conversation, the highest message id delivered: a range wholly covered gives its
// last id; a range that upTo cuts gives the id of its k-th message, read from the
// conversation's stream. A watermark that moves is written (GREATEST: never back;
// a group's row only if the member has one, see the migration), and returned with
// the senders, other than the member, of the messages it newly covers.
const deliveredSQL = `
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS r(user_id, device_id, from_seq, up_to, op)
), span AS (
    SELECT r.op, r.user_id, r.up_to, q.conversation, q.last_seq, q.count, q.first_id, q.last_id
    FROM req r
    CROSS JOIN LATERAL (SELECT GREATEST(r.from_seq, r.up_to - $5,
        (SELECT c.cursor FROM device_cursors c WHERE c.user_id = r.user_id AND c.device_id = r.device_id)) AS low) l
    CROSS JOIN LATERAL (
        SELECT * FROM queue_ranges q WHERE q.user_id = r.user_id AND q.last_seq > l.low
        ORDER BY q.last_seq LIMIT GREATEST(r.up_to - l.low + 1, 0)
    ) q
    WHERE q.last_seq - q.count < r.up_to
), top AS (
    SELECT DISTINCT ON (op, conversation) * FROM span ORDER BY op, conversation, last_seq DESC
), marks AS (
    SELECT t.op, t.user_id, t.conversation,
           (SELECT min(s.first_id) FROM span s WHERE s.op = t.op AND s.conversation = t.conversation) AS from_id,
           CASE WHEN t.last_seq <= t.up_to THEN t.last_id ELSE (
               SELECT e.message_id FROM conversation_events e
               WHERE e.conversation = t.conversation AND e.kind = 0 AND e.message_id >= t.first_id
               ORDER BY e.message_id OFFSET t.up_to - (t.last_seq - t.count) - 1 LIMIT 1) END AS up_to
    FROM top t
), moved AS (
    SELECT m.*, COALESCE(x.delivered, 0) AS was
    FROM marks m LEFT JOIN receipts x ON x.conversation = m.conversation AND x.user_id = m.user_id
    WHERE m.up_to > COALESCE(x.delivered, 0) AND (x.user_id IS NOT NULL OR m.conversation LIKE 'dm:%')
), ins AS (
    INSERT INTO receipts (conversation, user_id, delivered, read)
    SELECT DISTINCT ON (conversation, user_id) conversation, user_id, up_to, 0 FROM moved
    ORDER BY conversation, user_id, up_to DESC
    ON CONFLICT (conversation, user_id) DO UPDATE SET delivered = GREATEST(receipts.delivered, EXCLUDED.delivered)
)
SELECT m.op, m.conversation, m.up_to, ARRAY(
    SELECT DISTINCT e.sender FROM conversation_events e
    WHERE e.conversation = m.conversation AND e.kind = 0 AND e.sender <> m.user_id
      AND e.message_id > GREATEST(m.was, m.from_id - 1) AND e.message_id <= m.up_to)
FROM moved m`

// queueDelivered queues deliveredSQL for the cursor moves among ops (those that
// move a cursor from a known position: from < cursor), which collect their moves.
func queueDelivered(b *pgx.Batch, ops []op) {
	var users, devices []string
	var froms, tos []int64
	var idx []int // ordinal in the statement -> index in ops
	for i, o := range ops {
		w := o.arg.(*cursorWrite)
		w.moves = nil
		if w.from < w.cursor {
			users, devices = append(users, w.user), append(devices, w.device)
			froms, tos, idx = append(froms, w.from), append(tos, w.cursor), append(idx, i)
		}
	}
	if len(users) == 0 {
		return
	}
	b.Queue(deliveredSQL, users, devices, froms, tos, receiptSpan).Query(func(rows pgx.Rows) error {
		var n, upTo int64
		var conv string
		var senders []string
		for rows.Next() {
			senders = nil
			if err := rows.Scan(&n, &conv, &upTo, &senders); err != nil {
				return err
			}
			w := ops[idx[n-1]].arg.(*cursorWrite)
			w.moves = append(w.moves, persistence.ReceiptMove{Conversation: conv, User: w.user,
				Status: persistence.Delivered, UpTo: upTo, Senders: senders})
		}
		return rows.Err()
	})
}

// readSQL writes read receipts. Parameters, per read: $1 user, $2 conversation,
// $3 the message id read up to, $4 the id the user's part of the conversation starts
// after (a group member's join; 0). A read is refused (ok false, nothing written)
// unless its id is a message of the conversation after that floor. A watermark that
// moves is written (read implies delivered) and returned with the senders, other
// than the reader, of the last $5 messages it newly covers.
const readSQL = `
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS r(user_id, conversation, up_to, floor, op)
), ok AS (
    SELECT r.* FROM req r
    WHERE r.up_to > r.floor AND EXISTS (SELECT 1 FROM conversation_events e
        WHERE e.conversation = r.conversation AND e.message_id = r.up_to AND e.kind = 0)
), moved AS (
    SELECT o.*, COALESCE(x.read, 0) AS was
    FROM ok o LEFT JOIN receipts x ON x.conversation = o.conversation AND x.user_id = o.user_id
    WHERE o.up_to > COALESCE(x.read, 0) AND (x.user_id IS NOT NULL OR o.conversation LIKE 'dm:%')
), ins AS (
    INSERT INTO receipts (conversation, user_id, delivered, read)
    SELECT DISTINCT ON (conversation, user_id) conversation, user_id, up_to, up_to FROM moved
    ORDER BY conversation, user_id, up_to DESC
    ON CONFLICT (conversation, user_id) DO UPDATE
    SET read = GREATEST(receipts.read, EXCLUDED.read), delivered = GREATEST(receipts.delivered, EXCLUDED.read)
)
SELECT r.op, ok.op IS NOT NULL, m.op IS NOT NULL, COALESCE(ARRAY(
    SELECT DISTINCT s.sender FROM (
        SELECT e.sender FROM conversation_events e
        WHERE e.conversation = m.conversation AND e.kind = 0 AND e.message_id > m.was AND e.message_id <= m.up_to
        ORDER BY e.message_id DESC LIMIT $5) s
    WHERE s.sender <> m.user_id), '{}')
FROM req r LEFT JOIN ok ON ok.op = r.op LEFT JOIN moved m ON m.op = r.op`

// readSenders bounds the messages a read's senders are looked up among.
const readSenders = 1000

type readWrite struct {
	user, conv  string
	upTo, floor int64

	ok     bool // the read was accepted
	moved  bool // it moved the watermark
	notify []string
}

func (w *readWrite) reset() { w.ok, w.moved, w.notify = false, false, nil }

func queueReads(b *pgx.Batch, ops []op) int {
	users, convs := make([]string, len(ops)), make([]string, len(ops))
	ups, floors := make([]int64, len(ops)), make([]int64, len(ops))
	for i, o := range ops {
		w := o.arg.(*readWrite)
		w.reset()
		users[i], convs[i], ups[i], floors[i] = w.user, w.conv, w.upTo, w.floor
	}
	b.Queue(readSQL, users, convs, ups, floors, readSenders).Query(func(rows pgx.Rows) error {
		var r readWrite
		return scanPerOp(rows, ops, []any{&r.ok, &r.moved, &r.notify}, func(o op) {
			w := o.arg.(*readWrite)
			w.ok, w.moved, w.notify = r.ok, r.moved, r.notify
			r = readWrite{}
		})
	})
	return len(ops)
}

// SaveRead marks conv read by user up to the message upTo in the next group commit;
// floor is the id the user's part of the conversation starts after (a group
// member's join; 0 for a direct conversation, whose members the caller checked).
// done is called on a committer goroutine with the watermark's move (nil if it was
// there already), or ErrNotFound if upTo is no message of conv after floor.
func (s *Store) SaveRead(user, conv string, upTo, floor int64, done func(*persistence.ReceiptMove, error)) {
	w := &readWrite{user: user, conv: conv, upTo: upTo, floor: floor}
	s.committer.submit(op{kind: kindRead, key: user + "\x00" + conv, arg: w, done: func(err error) {
		switch {
		case err != nil:
			done(nil, err)
		case !w.ok:
			done(nil, persistence.ErrNotFound)
		case !w.moved:
			done(nil, nil)
		default:
			done(&persistence.ReceiptMove{Conversation: conv, User: user, Status: persistence.Read,
				UpTo: upTo, Senders: w.notify}, nil)
		}
	}})
}

// joinReceiptsSQL writes the receipts rows of members who joined a group, at the
// join event's id, and deletes those of members who left, if the event was stored
// (the append before it in the commit may have found the stream moved). Parameters:
// $1 conversation, $2 event id, $3 users joined, $4 users left.
const joinReceiptsSQL = `
WITH stored AS (
    SELECT 1 FROM conversation_events WHERE conversation = $1 AND message_id = $2
), del AS (
    DELETE FROM receipts WHERE conversation = $1 AND user_id = ANY($4::text[]) AND EXISTS (SELECT 1 FROM stored)
)
INSERT INTO receipts (conversation, user_id, delivered, read)
SELECT $1, u, $2, $2 FROM unnest($3::text[]) AS u WHERE EXISTS (SELECT 1 FROM stored)
ON CONFLICT (conversation, user_id) DO UPDATE
SET delivered = GREATEST(receipts.delivered, EXCLUDED.delivered), read = GREATEST(receipts.read, EXCLUDED.read)`

// Receipts returns every watermark kept for conv: a group's members, a direct
// conversation's members that have had a receipt.
func (s *Store) Receipts(ctx context.Context, conv string) ([]persistence.Watermark, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, delivered, read FROM receipts WHERE conversation = $1 ORDER BY user_id`, conv)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (persistence.Watermark, error) {
		var w persistence.Watermark
		err := r.Scan(&w.User, &w.Delivered, &w.Read)
		return w, err
	})
	return out, mapErr(err)
}
