package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// writers[k] queues the one statement that writes every op of kind k in a round of a
// commit (distinct keys, in key order) and returns the rows it gives it. Each
// statement takes arrays (one element per op, and one per row), so a commit costs a
// few statements whatever the number of grains in it.
var writers = [numKinds]func(b *pgx.Batch, ops []op) (rows int){
	kindConversation: queueConversations,
	kindCursor:       queueCursors,
	kindLastSeen:     queueLastSeen,
}

// appendConversationsSQL appends to many conversation streams and, in the same
// statement, to the sync queues of their recipients.
//
// Parameters: $1..$3 per op (conversation, stream, expected version); $4..$10 per
// row (its op's 1-based ordinal, and the event); $11, $12 per recipient (its op's
// ordinal, the user). A row repeating a sender's client id is skipped; an op whose
// stream another writer moved writes nothing. Each op's messages go into each of its
// recipients' queues as one range row, taking the next seqs of that queue: the
// queue's stream row is bumped by the count (it was locked, in key order, by the
// commit's first statement), and several ops reaching one user in this statement
// take consecutive seqs in op order. Each range's seq comes from the queue's row as
// the statement found it, not from a join with the rows the bump returns (a join of
// two CTEs is planned as a nested loop: quadratic in a group's members). A queue's
// row is made with its user (CreateUser), so it is locked before this statement
// reads it; were it missing, a commit racing another to create it would fail on the
// unique (user_id, last_seq) key and be retried, never give two entries one seq.
//
// The check for rows already written is an EXISTS in a select list, not in a WHERE
// clause: Postgres then probes the unique index of the one partition that can hold
// the row, for each row, instead of planning an anti-join that may scan the table.
//
// It returns, per op: the new version (NULL on a version conflict), the ids written,
// and the recipients with the last seq each got.
const appendConversationsSQL = `
WITH ops AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS o(conversation, stream, expected, op)
), input AS (
    SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bytea[], $10::smallint[])
        WITH ORDINALITY AS t(op, message_id, sender, client_id, ts, payload, kind, ord)
), checked AS (
    SELECT o.op, o.conversation, o.expected, i.message_id, i.sender, i.client_id, i.ts, i.payload, i.kind, i.ord, EXISTS (SELECT 1 FROM conversation_events e
        WHERE e.conversation = o.conversation AND e.sender = i.sender AND e.client_id = i.client_id) AS seen
    FROM input i JOIN ops o ON o.op = i.op
), fresh AS (
    SELECT op, conversation, message_id, sender, client_id, ts, payload, kind,
           expected + row_number() OVER (PARTITION BY op ORDER BY ord) AS version
    FROM checked WHERE NOT seen
), target AS (
    SELECT o.op, o.stream, o.expected, o.expected + count(f.op) AS version
    FROM ops o LEFT JOIN fresh f ON f.op = o.op GROUP BY o.op, o.stream, o.expected
), bumped AS (
    UPDATE streams s SET version = t.version FROM target t
    WHERE s.id = t.stream AND s.version = t.expected
    RETURNING t.op, s.version
), created AS (
    INSERT INTO streams (id, version)
    SELECT stream, version FROM target WHERE expected = 0 ORDER BY stream
    ON CONFLICT (id) DO NOTHING
    RETURNING id, version
), ok AS (
    SELECT op, version FROM bumped
    UNION ALL SELECT t.op, c.version FROM created c JOIN target t ON t.stream = c.id
), ins AS (
    INSERT INTO conversation_events (conversation, version, message_id, sender, client_id, ts, payload, kind)
    SELECT f.conversation, f.version, f.message_id, f.sender, f.client_id, f.ts, f.payload, f.kind
    FROM fresh f JOIN ok ON ok.op = f.op
    RETURNING conversation, message_id, kind
), written AS (
    SELECT o.op, o.conversation, min(i.message_id) AS first_id, max(i.message_id) AS last_id, count(*) AS n
    FROM ins i JOIN ops o ON o.conversation = i.conversation WHERE i.kind = 0
    GROUP BY o.op, o.conversation
), entries AS (
    -- The queue's version before this statement (its row is locked) plus what the ops
    -- before this one in the statement added: the last seq this op's range takes.
    SELECT r.user_id, w.conversation, w.first_id, w.last_id, w.n,
           COALESCE(s.version, 0) + sum(w.n) OVER (PARTITION BY r.user_id ORDER BY w.op) AS last_seq,
           sum(w.n) OVER (PARTITION BY r.user_id) AS total
    FROM unnest($11::bigint[], $12::text[]) AS r(op, user_id) JOIN written w ON w.op = r.op
    LEFT JOIN streams s ON s.id = 'u:' || r.user_id
), queued AS (
    INSERT INTO streams AS s (id, version)
    SELECT DISTINCT 'u:' || user_id, total FROM entries ORDER BY 1
    ON CONFLICT (id) DO UPDATE SET version = s.version + EXCLUDED.version
), ranges AS (
    INSERT INTO queue_ranges (user_id, last_seq, count, conversation, first_id, last_id)
    SELECT user_id, last_seq, n, conversation, first_id, last_id FROM entries
    RETURNING user_id, last_seq, conversation
), ids AS (
    SELECT conversation, array_agg(message_id ORDER BY message_id) AS ids FROM ins GROUP BY conversation
), seqs AS (
    SELECT conversation, array_agg(user_id ORDER BY user_id) AS users, array_agg(last_seq ORDER BY user_id) AS seqs
    FROM ranges GROUP BY conversation
)
SELECT o.op, ok.version, COALESCE(ids.ids, '{}'), COALESCE(seqs.users, '{}'), COALESCE(seqs.seqs, '{}')
FROM ops o LEFT JOIN ok ON ok.op = o.op
    LEFT JOIN ids ON ids.conversation = o.conversation
    LEFT JOIN seqs ON seqs.conversation = o.conversation`

// convWrite is one conversation append: its rows and recipients in, the outcome
// out. Its stream is the op's key; its recipients' queue streams are the op's locks.
type convWrite struct {
	conv       string
	expected   int64
	ids, ts    []int64
	senders    []string
	clients    []string
	payloads   [][]byte
	kinds      []int16
	recipients []string

	version  *int64  // nil: the stream was past expected
	inserted []int64 // ids written
	queued   []string
	lastSeqs []int64 // per queued recipient, the last seq it got
}

// reset clears the outcome before a (re)try of the commit.
func (w *convWrite) reset() { w.version, w.inserted, w.queued, w.lastSeqs = nil, nil, nil, nil }

func queueConversations(b *pgx.Batch, ops []op) int {
	var convs, streams, senders, clients, users []string
	var expected, rowOps, ids, ts, userOps []int64
	var payloads [][]byte
	var kinds []int16
	for i, o := range ops {
		w := o.arg.(*convWrite)
		w.reset()
		convs, streams, expected = append(convs, w.conv), append(streams, o.key), append(expected, w.expected)
		for range w.ids {
			rowOps = append(rowOps, int64(i+1))
		}
		for _, u := range w.recipients {
			userOps, users = append(userOps, int64(i+1)), append(users, u)
		}
		ids, ts, senders = append(ids, w.ids...), append(ts, w.ts...), append(senders, w.senders...)
		clients, payloads, kinds = append(clients, w.clients...), append(payloads, w.payloads...), append(kinds, w.kinds...)
	}
	b.Queue(appendConversationsSQL, convs, streams, expected, rowOps, ids, senders, clients, ts, payloads, kinds,
		userOps, users).
		Query(func(rows pgx.Rows) error {
			var r convWrite
			return scanPerOp(rows, ops, []any{&r.version, &r.inserted, &r.queued, &r.lastSeqs}, func(o op) {
				w := o.arg.(*convWrite)
				w.version, w.inserted, w.queued, w.lastSeqs = r.version, r.inserted, r.queued, r.lastSeqs
				r = convWrite{} // pgx may scan the next row into what r still points to
			})
		})
	return len(ids) + len(users)
}

// scanPerOp reads result rows whose first column is an op's 1-based ordinal into
// dest (the other columns), then lets set copy them to that op.
func scanPerOp(rows pgx.Rows, ops []op, dest []any, set func(o op)) error {
	var n int64
	dest = append([]any{&n}, dest...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if n < 1 || int(n) > len(ops) {
			return fmt.Errorf("result for op %d of %d", n, len(ops))
		}
		set(ops[n-1])
	}
	return rows.Err()
}

type cursorWrite struct {
	user, device string
	cursor       int64
}

func (*cursorWrite) reset() {}

func queueCursors(b *pgx.Batch, ops []op) int {
	users, devices, cursors := make([]string, len(ops)), make([]string, len(ops)), make([]int64, len(ops))
	for i, o := range ops {
		w := o.arg.(*cursorWrite)
		users[i], devices[i], cursors[i] = w.user, w.device, w.cursor
	}
	b.Queue(`INSERT INTO device_cursors (user_id, device_id, cursor)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
		ON CONFLICT (user_id, device_id) DO UPDATE
		SET cursor = GREATEST(device_cursors.cursor, EXCLUDED.cursor)`, users, devices, cursors)
	return len(ops)
}

type lastSeenWrite struct {
	user string
	ms   int64
}

func (*lastSeenWrite) reset() {}

func queueLastSeen(b *pgx.Batch, ops []op) int {
	users, ms := make([]string, len(ops)), make([]int64, len(ops))
	for i, o := range ops {
		w := o.arg.(*lastSeenWrite)
		users[i], ms[i] = w.user, w.ms
	}
	b.Queue(`UPDATE users u SET last_seen = GREATEST(u.last_seen, s.ms)
		FROM unnest($1::text[], $2::bigint[]) AS s(id, ms) WHERE u.id = s.id`, users, ms)
	return len(ops)
}
