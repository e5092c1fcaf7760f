package postgres

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
)

// writers[k] queues the one statement that writes every op of kind k in a round of a
// commit (distinct keys, in key order) and returns the rows it gives it. Each
// statement takes arrays (one element per op, and one per row), so a commit costs a
// few statements whatever the number of grains in it.
var writers = [numKinds]func(b *pgx.Batch, ops []op) (rows int){
	kindConversation: queueConversations,
	kindCursor:       queueCursors,
	kindRead:         queueReads,
	kindLastSeen:     queueLastSeen,
	kindPresence:     queuePresence,
	kindChannelRead:  queueChannelReads,
}

// appendConversationsSQL appends to many conversation streams and, in the same
// statement, to the sync queues of their recipients.
//
// Parameters: $1, $2 per op (conversation, expected version); $3..$9 per row (its
// op's 1-based ordinal, and the event); $10, $11 per recipient (its op's ordinal, the
// user). A row repeating a sender's client id is skipped. An op writes only if its
// conversation's stream is at the version it expects, the highest version stored:
// two activations that both find it so both write the next version, and the second
// to commit fails on the stream's primary key (a conflict, as it should). Each op's
// messages go into each of its recipients' queues as one range row taking the
// queue's next seqs, after the highest stored (the queue's row in streams was locked
// by the commit's first statement, in key order, so that no other commit moves the
// queue meanwhile); several ops reaching one user in this statement take
// consecutive seqs in op order. So a message costs its event row and a range row per
// recipient, and no stream row is rewritten.
//
// The check for rows already written is an EXISTS in a select list, not in a WHERE
// clause: Postgres then probes the unique index of the one partition that can hold
// the row, for each row, instead of planning an anti-join that may scan the table.
// The outcome is computed from what the inserts were given: a RETURNING list on a
// partitioned table is mapped anew for every partition the statement routes to.
//
// In the same statement, each recipient whose queue the messages make a push for
// (see package push: it has a push target, no connection, and has not muted the
// conversation) gets a row per target device in the push outbox, due after $12 ms,
// unless the device has one waiting already (which then stands for these messages
// too, and nothing is written). A recipient with no push target costs one index
// probe.
//
// It returns, per op: the new version (NULL on a version conflict), the ids written,
// and the recipients with the last seq each got.
var appendConversationsSQL = `
WITH ops AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS o(conversation, expected, op)
), input AS (
    SELECT * FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bytea[], $9::smallint[])
        WITH ORDINALITY AS t(op, message_id, sender, client_id, ts, payload, kind, ord)
), ok AS (
    SELECT o.op, o.conversation, o.expected FROM ops o
    WHERE o.expected = COALESCE((SELECT max(e.version) FROM conversation_events e WHERE e.conversation = o.conversation), 0)
), checked AS (
    SELECT o.op, o.conversation, o.expected, i.message_id, i.sender, i.client_id, i.ts, i.payload, i.kind, i.ord, EXISTS (SELECT 1 FROM conversation_events e
        WHERE e.conversation = o.conversation AND e.sender = i.sender AND e.client_id = i.client_id) AS seen
    FROM input i JOIN ok o ON o.op = i.op
), stored AS (
    SELECT op, conversation, message_id, sender, client_id, ts, payload, kind,
           expected + row_number() OVER (PARTITION BY op ORDER BY ord) AS version
    FROM checked WHERE NOT seen
), ins AS (
    INSERT INTO conversation_events (conversation, version, message_id, sender, client_id, ts, payload, kind)
    SELECT conversation, version, message_id, sender, client_id, ts, payload, kind FROM stored
), written AS (
    SELECT op, conversation, min(message_id) AS first_id, max(message_id) AS last_id, count(*) AS n
    FROM stored WHERE kind = 0 GROUP BY op, conversation
), entries AS (
    SELECT r.user_id, w.op, w.conversation, w.first_id, w.last_id, w.n,
           COALESCE((SELECT max(q.last_seq) FROM queue_ranges q WHERE q.user_id = r.user_id), 0)
               + sum(w.n) OVER (PARTITION BY r.user_id ORDER BY w.op) AS last_seq
    FROM unnest($10::bigint[], $11::text[]) AS r(op, user_id) JOIN written w ON w.op = r.op
), ranges AS (
    INSERT INTO queue_ranges (user_id, last_seq, count, conversation, first_id, last_id)
    SELECT user_id, last_seq, n, conversation, first_id, last_id FROM entries
), pushed AS (
    -- The queue entries that make a push: to a recipient that has a push target, is
    -- not connected and has not muted the conversation, of messages it did not send.
    SELECT e.user_id, min(e.last_seq - e.n + 1) AS from_seq
    FROM (SELECT * FROM entries e WHERE (SELECT 1 FROM devices d
            WHERE d.user_id = e.user_id AND d.push_provider <> '' LIMIT 1) IS NOT NULL) e
    WHERE (SELECT 1 FROM stored s WHERE s.op = e.op AND s.kind = 0 AND s.sender <> e.user_id LIMIT 1) IS NOT NULL
      AND ` + connectedProbe("e.user_id") + ` IS NULL
      AND (SELECT 1 FROM conversation_settings c
            WHERE c.user_id = e.user_id AND c.conversation = e.conversation AND c.muted) IS NULL
    GROUP BY e.user_id
), outbox AS (
    -- A device with a notification waiting has its row already: nothing to write.
    INSERT INTO push_outbox (user_id, device_id, from_seq, created_at, next_at)
    SELECT d.user_id, d.device_id, x.from_seq, parley_now_ms(), parley_now_ms() + $12
    FROM pushed x JOIN devices d ON d.user_id = x.user_id AND d.push_provider <> '' AND d.push_until > parley_now_ms()
    ON CONFLICT (user_id, device_id) DO NOTHING
), versions AS (
    SELECT ok.op, COALESCE(max(s.version), ok.expected) AS version,
           COALESCE(array_agg(s.message_id ORDER BY s.message_id) FILTER (WHERE s.op IS NOT NULL), '{}') AS ids
    FROM ok LEFT JOIN stored s ON s.op = ok.op GROUP BY ok.op, ok.expected
), seqs AS (
    SELECT op, array_agg(user_id ORDER BY user_id) AS users, array_agg(last_seq ORDER BY user_id) AS seqs
    FROM entries GROUP BY op
)
SELECT o.op, v.version, COALESCE(v.ids, '{}'), COALESCE(seqs.users, '{}'), COALESCE(seqs.seqs, '{}')
FROM ops o LEFT JOIN versions v ON v.op = o.op LEFT JOIN seqs ON seqs.op = o.op`

// convWrite is one conversation append: its rows and recipients in, the outcome
// out. Its stream is the op's key (ops on one stream go to successive statements);
// its recipients' queue streams are the op's locks.
type convWrite struct {
	conv       string
	expected   int64
	ids, ts    []int64
	senders    []string
	clients    []string
	payloads   [][]byte
	kinds      []int16
	recipients []string
	// A group membership event: the members it adds and removes, whose receipts
	// rows it writes at its id or deletes (joinReceiptsSQL).
	event        int64
	joined, left []string
	pushGather   int64         // ms a push waits for more messages to collapse with (Options.PushGather)
	channel      *channelWrite // a channel event's projection

	version  *int64  // nil: the stream was past expected
	inserted []int64 // ids written
	queued   []string
	lastSeqs []int64 // per queued recipient, the last seq it got
}

// reset clears the outcome before a (re)try of the commit.
func (w *convWrite) reset() { w.version, w.inserted, w.queued, w.lastSeqs = nil, nil, nil, nil }

func queueConversations(b *pgx.Batch, ops []op) int {
	var convs, senders, clients, users []string
	var expected, rowOps, ids, ts, userOps []int64
	var payloads [][]byte
	var kinds []int16
	for i, o := range ops {
		w := o.arg.(*convWrite)
		w.reset()
		convs, expected = append(convs, w.conv), append(expected, w.expected)
		for range w.ids {
			rowOps = append(rowOps, int64(i+1))
		}
		for _, u := range w.recipients {
			userOps, users = append(userOps, int64(i+1)), append(users, u)
		}
		ids, ts, senders = append(ids, w.ids...), append(ts, w.ts...), append(senders, w.senders...)
		clients, payloads, kinds = append(clients, w.clients...), append(payloads, w.payloads...), append(kinds, w.kinds...)
	}
	b.Queue(appendConversationsSQL, convs, expected, rowOps, ids, senders, clients, ts, payloads, kinds,
		userOps, users, ops[0].arg.(*convWrite).pushGather).
		Query(func(rows pgx.Rows) error {
			var r convWrite
			return scanPerOp(rows, ops, []any{&r.version, &r.inserted, &r.queued, &r.lastSeqs}, func(o op) {
				w := o.arg.(*convWrite)
				w.version, w.inserted, w.queued, w.lastSeqs = r.version, r.inserted, r.queued, r.lastSeqs
				r = convWrite{} // pgx may scan the next row into what r still points to
			})
		})
	for _, o := range ops {
		w := o.arg.(*convWrite)
		if len(w.joined) > 0 || len(w.left) > 0 {
			b.Queue(joinReceiptsSQL, w.conv, w.event, w.joined, w.left)
		}
		if w.channel != nil {
			w.channel.queue(b)
		}
	}
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
	delivered    []persistence.ReceiptMove // the delivered watermarks the move makes
}

func (*cursorWrite) reset() {}

// queueCursors queues the delivered watermarks of the moves, then the cursor
// upsert.
func queueCursors(b *pgx.Batch, ops []op) int {
	queueDelivered(b, ops)
	var users, devices []string
	var cursors []int64
	for _, o := range ops {
		if w := o.arg.(*cursorWrite); w.cursor > 0 { // 0: reads only
			users, devices, cursors = append(users, w.user), append(devices, w.device), append(cursors, w.cursor)
		}
	}
	if len(users) == 0 {
		return len(ops)
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

type presenceWrite struct {
	user, holder string
	since        int64
	online       bool
	disconnected bool // the last connection went; the row stays (online is false)
}

func (*presenceWrite) reset() {}

// queuePresence writes the online rows of users that came online (connected, and
// with no push left waiting: a device online cancels them), marks those whose last
// connection went, and deletes those of users that went offline, if the row is
// still this holder's (the user may be online on another node already).
func queuePresence(b *pgx.Batch, ops []op) int {
	var on, onHolders, gone, goneHolders, off, offHolders []string
	var since []int64
	for _, o := range ops {
		switch w := o.arg.(*presenceWrite); {
		case w.online:
			on, onHolders, since = append(on, w.user), append(onHolders, w.holder), append(since, w.since)
		case w.disconnected:
			gone, goneHolders = append(gone, w.user), append(goneHolders, w.holder)
		default:
			off, offHolders = append(off, w.user), append(offHolders, w.holder)
		}
	}
	if len(on) > 0 {
		b.Queue(`WITH up AS (
			INSERT INTO presence_online (user_id, holder, since, connected)
			SELECT id, holder, since, true FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s(id, holder, since)
			ON CONFLICT (user_id) DO UPDATE SET holder = EXCLUDED.holder, since = EXCLUDED.since, connected = true
		) DELETE FROM push_outbox WHERE user_id = ANY($1)`, on, onHolders, since)
	}
	if len(gone) > 0 {
		b.Queue(`UPDATE presence_online p SET connected = false FROM unnest($1::text[], $2::text[]) AS s(id, holder)
			WHERE p.user_id = s.id AND p.holder = s.holder`, gone, goneHolders)
	}
	if len(off) > 0 {
		b.Queue(`DELETE FROM presence_online p USING unnest($1::text[], $2::text[]) AS s(id, holder)
			WHERE p.user_id = s.id AND p.holder = s.holder`, off, offHolders)
	}
	return len(ops)
}
