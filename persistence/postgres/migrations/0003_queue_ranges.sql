-- Sync queues hold ranges, written in the same statement as the messages they point
-- at: one row per (user, conversation append) stands for the count consecutive seqs
-- that end at last_seq, and they are the conversation's messages (kind 0) with ids
-- from first_id to last_id. A queue's entries are resolved from the conversation's
-- stream when read, so a message is stored once, however many queues hold it, and a
-- batch of k messages costs each recipient one row, not k.
CREATE TABLE queue_ranges (
    user_id      text    NOT NULL,
    last_seq     bigint  NOT NULL,
    count        integer NOT NULL CHECK (count > 0),
    conversation text    NOT NULL,
    first_id     bigint  NOT NULL,
    last_id      bigint  NOT NULL,
    PRIMARY KEY (user_id, last_seq)
) PARTITION BY HASH (user_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE queue_ranges_p%s PARTITION OF queue_ranges
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;

-- Every entry of the old one-row-per-message queues becomes a range of one.
INSERT INTO queue_ranges (user_id, last_seq, count, conversation, first_id, last_id)
SELECT user_id, seq, 1, conversation, message_id, message_id FROM user_entries;
DROP TABLE user_entries;

-- A queue's stream row exists from the user's creation, so that a commit can lock
-- every stream it writes, in key order, before writing (no deadlock between commits).
INSERT INTO streams (id, version) SELECT 'u:' || id, 0 FROM users ON CONFLICT (id) DO NOTHING;

-- Fan-out is part of the commit now: nothing is left for an outbox, and a
-- conversation's snapshot held only its fan-out progress.
DROP TABLE outbox;
DELETE FROM snapshots WHERE stream LIKE 'c:%';
