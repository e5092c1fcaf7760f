package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
)

// deliveredSQL writes delivered watermarks. Parameters, per watermark: $1 the
// member, $2 the conversation, $3 the message id. A watermark is written if it
// moves the stored one (GREATEST: never back) and, in a group, only if the member
// has a row (see the migration). The stored value is read with a subquery in the
// select list, which probes the primary key of the one partition that can hold
// the row, where a join would scan the table under the commit's planner settings;
// the CTE is materialized so that it runs once per row.
const deliveredSQL = `
WITH cur AS MATERIALIZED (
    SELECT i.*, (SELECT x.delivered FROM receipts x WHERE x.conversation = i.conversation AND x.user_id = i.user_id) AS was
    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(user_id, conversation, up_to)
)
INSERT INTO receipts (conversation, user_id, delivered, read)
SELECT DISTINCT ON (conversation, user_id) conversation, user_id, up_to, 0 FROM cur
WHERE up_to > COALESCE(was, 0) AND (was IS NOT NULL OR conversation LIKE 'dm:%')
ORDER BY conversation, user_id, up_to DESC
ON CONFLICT (conversation, user_id) DO UPDATE SET delivered = GREATEST(receipts.delivered, EXCLUDED.delivered)`

// readMarksSQL writes the reads of direct conversations that connections
// checked themselves (a message they wrote to the reader), with the cursor:
// parameters as deliveredSQL's. A watermark only moves forward, and read implies
// delivered.
const readMarksSQL = `
INSERT INTO receipts (conversation, user_id, delivered, read)
SELECT DISTINCT ON (conversation, user_id) conversation, user_id, up_to, up_to
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(user_id, conversation, up_to)
WHERE conversation LIKE 'dm:%'
ORDER BY conversation, user_id, up_to DESC
ON CONFLICT (conversation, user_id) DO UPDATE
SET read = GREATEST(receipts.read, EXCLUDED.read), delivered = GREATEST(receipts.delivered, EXCLUDED.read)`

// queueDelivered queues deliveredSQL for the delivered watermarks of the cursor
// moves among ops, and readMarksSQL for their reads.
func queueDelivered(b *pgx.Batch, ops []op) {
	var marks [2]struct {
		users, convs []string
		ups          []int64
	}
	for _, o := range ops {
		w := o.arg.(*cursorWrite)
		for _, m := range w.delivered {
			k := &marks[0]
			if m.Status == persistence.Read {
				k = &marks[1]
			}
			k.users, k.convs, k.ups = append(k.users, w.user), append(k.convs, m.Conversation), append(k.ups, m.UpTo)
		}
	}
	for i, sql := range []string{deliveredSQL, readMarksSQL} {
		if k := marks[i]; len(k.users) > 0 {
			b.Queue(sql, k.users, k.convs, k.ups)
		}
	}
}

// readSQL writes read receipts. Parameters, per read: $1 user, $2 conversation,
// $3 the message id read up to, $4 the id the user's part of the conversation starts
// after (a group member's join; 0). A read is refused (ok false, nothing written)
// unless its id is a message of the conversation after that floor. A watermark that
// moves is written (read implies delivered; a group's only if the member has a row)
// and returned with the senders, other than the reader, of the last $5 messages it
// newly covers. Lookups are subqueries in select lists, as in deliveredSQL.
const readSQL = `
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS r(user_id, conversation, up_to, floor, op)
), chk AS MATERIALIZED (
    SELECT r.*, r.up_to > r.floor AND EXISTS (SELECT 1 FROM conversation_events e
               WHERE e.conversation = r.conversation AND e.message_id = r.up_to AND e.kind = 0) AS ok,
           (SELECT x.read FROM receipts x WHERE x.conversation = r.conversation AND x.user_id = r.user_id) AS was
    FROM req r
), moved AS (
    SELECT * FROM chk WHERE ok AND up_to > COALESCE(was, 0) AND (was IS NOT NULL OR conversation LIKE 'dm:%')
), ins AS (
    INSERT INTO receipts (conversation, user_id, delivered, read)
    SELECT DISTINCT ON (conversation, user_id) conversation, user_id, up_to, up_to FROM moved
    ORDER BY conversation, user_id, up_to DESC
    ON CONFLICT (conversation, user_id) DO UPDATE
    SET read = GREATEST(receipts.read, EXCLUDED.read), delivered = GREATEST(receipts.delivered, EXCLUDED.read)
)
SELECT c.op, c.ok, m.op IS NOT NULL, COALESCE(ARRAY(
    SELECT DISTINCT s.sender FROM (
        SELECT e.sender FROM conversation_events e
        WHERE e.conversation = m.conversation AND e.kind = 0 AND e.message_id > COALESCE(m.was, 0) AND e.message_id <= m.up_to
        ORDER BY e.message_id DESC LIMIT $5) s
    WHERE s.sender <> m.user_id), '{}')
FROM chk c LEFT JOIN moved m ON m.op = c.op`

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
	s.side.submit(op{kind: kindRead, key: user + "\x00" + conv, arg: w, done: func(err error) {
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
