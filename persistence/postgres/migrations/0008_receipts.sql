-- Receipts: per (conversation, member), the highest message id that any device of
-- the member has (delivered) and that the member has read (read). Both are
-- cumulative watermarks, only ever moved forward (GREATEST), and read implies
-- delivered. A row is the receipts' current state, not a log: a member's many
-- receipts cost it one row per conversation, rewritten in place, in the group
-- commit with the cursor moves and reads that produce them.
--
-- A group member's row is written when it joins, at the join event's id (it has
-- nothing from before it, so it holds no "by all" minimum back), and deleted when it
-- leaves: the rows of a group are its members, and the minimum over them is the
-- group's "delivered to all" and "read by all". A receipt moves a group member's
-- row only if it has one (a member that left keeps none); a direct conversation's
-- rows are written at their first receipt. (Groups created before this migration
-- have no rows, so they keep no receipts.)
-- The partitions leave room in each page so that a row rewritten in place stays on
-- its page (a HOT update: no index entry per receipt).
CREATE TABLE receipts (
    conversation text   NOT NULL,
    user_id      text   NOT NULL,
    delivered    bigint NOT NULL,
    read         bigint NOT NULL,
    PRIMARY KEY (conversation, user_id)
) PARTITION BY HASH (conversation);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE receipts_p%s PARTITION OF receipts
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s) WITH (fillfactor = 70)', i, i);
    END LOOP;
END $$;
