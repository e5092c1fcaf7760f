package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// writers[k] queues the one statement that writes every op of kind k in a round of a
// commit (distinct keys, in key order) and returns the rows it gives it. Each statement takes arrays (one element per
// op, and one per row for appends), so a commit costs a few statements whatever the
// number of grains in it.
var writers = [numKinds]func(b *pgx.Batch, ops []op) (rows int){
	kindConversation: queueConversations,
	kindUser:         queueUsers,
	kindOutboxClear:  queueOutboxClears,
	kindCursor:       queueCursors,
	kindSnapshot:     queueSnapshots,
}

// The check for rows already written is an EXISTS in a select list, not in a WHERE
// clause: Postgres then probes the unique index of the one partition that can hold
// the row, for each row, instead of planning an anti-join that may scan the table.

// bumpStreams is the expected-version check shared by both appends. The CTE "target"
// has, per op, its stream, the version it expects and the version it would move to;
// "ok" has a row (op, new version) for each op whose check passed, none for an op
// whose stream another writer moved.
const bumpStreams = `
bumped AS (
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
)`

// appendConversationsSQL appends to many conversation streams: $1..$3 per op
// (conversation, stream, expected version), $4..$10 per row (its op's ordinal, 1-based,
// and the event). A row repeating a sender's client id is skipped. It returns, per op,
// the new version (NULL on a version conflict) and the ids written.
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
), ` + bumpStreams + `, ins AS (
    INSERT INTO conversation_events (conversation, version, message_id, sender, client_id, ts, payload, kind)
    SELECT f.conversation, f.version, f.message_id, f.sender, f.client_id, f.ts, f.payload, f.kind
    FROM fresh f JOIN ok ON ok.op = f.op
    RETURNING conversation, message_id, kind
), pending AS (
    INSERT INTO outbox (conversation, last_message_id)
    SELECT conversation, max(message_id) FROM ins WHERE kind = 0 GROUP BY conversation ORDER BY conversation
    ON CONFLICT (conversation) DO UPDATE
    SET last_message_id = GREATEST(outbox.last_message_id, EXCLUDED.last_message_id), updated_at = now()
)
SELECT o.op, ok.version, COALESCE(array_agg(i.message_id ORDER BY i.message_id) FILTER (WHERE i.message_id IS NOT NULL), '{}')
FROM ops o LEFT JOIN ok ON ok.op = o.op LEFT JOIN ins i ON i.conversation = o.conversation
GROUP BY o.op, ok.version`

// appendUsersSQL appends to many users' sync queues: $1..$3 per op (user, stream,
// expected version), $4..$7 per row (its op's ordinal and the entry). An entry already
// in the queue is skipped; the others take the next seqs. It returns, per op, the
// new version (NULL on a conflict) and the seqs and message ids written, in seq order.
const appendUsersSQL = `
WITH ops AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS o(user_id, stream, expected, op)
), input AS (
    SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::bytea[])
        WITH ORDINALITY AS t(op, message_id, conversation, payload, ord)
), checked AS (
    SELECT o.op, o.user_id, o.expected, i.message_id, i.conversation, i.payload, i.ord, EXISTS (SELECT 1 FROM user_entries e
        WHERE e.user_id = o.user_id AND e.message_id = i.message_id) AS seen
    FROM input i JOIN ops o ON o.op = i.op
), fresh AS (
    SELECT op, user_id, message_id, conversation, payload,
           expected + row_number() OVER (PARTITION BY op ORDER BY ord) AS seq
    FROM checked WHERE NOT seen
), target AS (
    SELECT o.op, o.stream, o.expected, o.expected + count(f.op) AS version
    FROM ops o LEFT JOIN fresh f ON f.op = o.op GROUP BY o.op, o.stream, o.expected
), ` + bumpStreams + `, ins AS (
    INSERT INTO user_entries (user_id, seq, message_id, conversation, payload)
    SELECT f.user_id, f.seq, f.message_id, f.conversation, f.payload FROM fresh f JOIN ok ON ok.op = f.op
    RETURNING user_id, seq, message_id
)
SELECT o.op, ok.version,
       COALESCE(array_agg(i.seq ORDER BY i.seq) FILTER (WHERE i.seq IS NOT NULL), '{}'),
       COALESCE(array_agg(i.message_id ORDER BY i.seq) FILTER (WHERE i.seq IS NOT NULL), '{}')
FROM ops o LEFT JOIN ok ON ok.op = o.op LEFT JOIN ins i ON i.user_id = o.user_id
GROUP BY o.op, ok.version`

// convWrite is one conversation append: its rows in, the outcome out. Its stream
// is the op's key.
type convWrite struct {
	conv     string
	expected int64
	ids, ts  []int64
	senders  []string
	clients  []string
	payloads [][]byte
	kinds    []int16

	version  *int64  // nil: the stream was past expected
	inserted []int64 // ids written
}

func queueConversations(b *pgx.Batch, ops []op) int {
	var convs, streams, senders, clients []string
	var expected, rowOps, ids, ts []int64
	var payloads [][]byte
	var kinds []int16
	for i, o := range ops {
		w := o.arg.(*convWrite)
		convs, streams, expected = append(convs, w.conv), append(streams, o.key), append(expected, w.expected)
		for range w.ids {
			rowOps = append(rowOps, int64(i+1))
		}
		ids, ts, senders = append(ids, w.ids...), append(ts, w.ts...), append(senders, w.senders...)
		clients, payloads, kinds = append(clients, w.clients...), append(payloads, w.payloads...), append(kinds, w.kinds...)
	}
	b.Queue(appendConversationsSQL, convs, streams, expected, rowOps, ids, senders, clients, ts, payloads, kinds).
		Query(func(rows pgx.Rows) error {
			var r convWrite
			return scanPerOp(rows, ops, []any{&r.version, &r.inserted}, func(o op) {
				w := o.arg.(*convWrite)
				w.version, w.inserted = r.version, r.inserted
				r = convWrite{} // pgx may scan the next row into what r still points to
			})
		})
	return len(ids)
}

// userWrite is one sync-queue append: its entries in, the outcome out. Its stream
// is the op's key.
type userWrite struct {
	user     string
	expected int64
	ids      []int64
	convs    []string
	payloads [][]byte

	version       *int64 // nil: the queue was past expected
	seqs, written []int64
}

func queueUsers(b *pgx.Batch, ops []op) int {
	var users, streams, convs []string
	var expected, rowOps, ids []int64
	var payloads [][]byte
	for i, o := range ops {
		w := o.arg.(*userWrite)
		users, streams, expected = append(users, w.user), append(streams, o.key), append(expected, w.expected)
		for range w.ids {
			rowOps = append(rowOps, int64(i+1))
		}
		ids, convs, payloads = append(ids, w.ids...), append(convs, w.convs...), append(payloads, w.payloads...)
	}
	b.Queue(appendUsersSQL, users, streams, expected, rowOps, ids, convs, payloads).
		Query(func(rows pgx.Rows) error {
			var r userWrite
			return scanPerOp(rows, ops, []any{&r.version, &r.seqs, &r.written}, func(o op) {
				w := o.arg.(*userWrite)
				w.version, w.seqs, w.written = r.version, r.seqs, r.written
				r = userWrite{}
			})
		})
	return len(ids)
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

type outboxClear struct {
	conv string
	upTo int64
}

func queueOutboxClears(b *pgx.Batch, ops []op) int {
	convs, upTo := make([]string, len(ops)), make([]int64, len(ops))
	for i, o := range ops {
		w := o.arg.(*outboxClear)
		convs[i], upTo[i] = w.conv, w.upTo
	}
	b.Queue(`DELETE FROM outbox o USING unnest($1::text[], $2::bigint[]) AS c(conversation, up_to)
		WHERE o.conversation = c.conversation AND o.last_message_id <= c.up_to`, convs, upTo)
	return len(ops)
}

type cursorWrite struct {
	user, device string
	cursor       int64
}

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

type snapshotWrite struct {
	stream  string
	version int64
	state   []byte
}

func queueSnapshots(b *pgx.Batch, ops []op) int {
	streams, versions, states := make([]string, len(ops)), make([]int64, len(ops)), make([][]byte, len(ops))
	for i, o := range ops {
		w := o.arg.(*snapshotWrite)
		streams[i], versions[i], states[i] = w.stream, w.version, w.state
	}
	b.Queue(`INSERT INTO snapshots (stream, version, state)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
		ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
		WHERE snapshots.version <= EXCLUDED.version`, streams, versions, states)
	return len(ops)
}
