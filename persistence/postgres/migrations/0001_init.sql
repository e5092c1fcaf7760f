-- Parley schema, version 1.
-- Event streams are partitioned by their key (conversation, user) so that the same
-- schema distributes with Citus by that column.

CREATE TABLE users (
    id            text PRIMARY KEY,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    last_seen     bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    user_id       text NOT NULL REFERENCES users (id),
    device_id     text NOT NULL,
    push_provider text NOT NULL DEFAULT '',
    push_token    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id)
);

-- One row per event stream ('c:<conversation>' or 'u:<user>'): its version. Every
-- append moves it from the version its writer expected, or writes nothing.
CREATE TABLE streams (
    id      text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE TABLE conversation_events (
    conversation text   NOT NULL,
    version      bigint NOT NULL,
    message_id   bigint NOT NULL,
    sender       text   NOT NULL,
    client_id    text   NOT NULL,
    ts           bigint NOT NULL,
    payload      bytea  NOT NULL,
    PRIMARY KEY (conversation, version)
) PARTITION BY HASH (conversation);
CREATE UNIQUE INDEX conversation_events_message ON conversation_events (conversation, message_id);
CREATE UNIQUE INDEX conversation_events_client ON conversation_events (conversation, sender, client_id);

-- Each user's sync queue: seq is gapless per user.
CREATE TABLE user_entries (
    user_id      text   NOT NULL,
    seq          bigint NOT NULL,
    message_id   bigint NOT NULL,
    conversation text   NOT NULL,
    payload      bytea  NOT NULL,
    PRIMARY KEY (user_id, seq)
) PARTITION BY HASH (user_id);
CREATE UNIQUE INDEX user_entries_message ON user_entries (user_id, message_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE conversation_events_p%s PARTITION OF conversation_events
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
        EXECUTE format('CREATE TABLE user_entries_p%s PARTITION OF user_entries
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;

CREATE TABLE device_cursors (
    user_id   text   NOT NULL,
    device_id text   NOT NULL,
    cursor    bigint NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE snapshots (
    stream  text PRIMARY KEY,
    version bigint NOT NULL,
    state   bytea NOT NULL
);

-- Snowflake node ids: a node holds its id while it renews the lease. reserved_ms is
-- the highest id timestamp (ms since the id epoch) the holder may have used, so a
-- later holder of the same id starts above it.
CREATE TABLE node_leases (
    node_id     integer PRIMARY KEY,
    holder      text    NOT NULL,
    expires_at  timestamptz NOT NULL,
    reserved_ms bigint  NOT NULL DEFAULT 0
);

-- Conversations whose committed messages may not be in every member's queue yet.
-- The committed event is the outbox: a row here points at it until the fan-out is
-- acknowledged, and a sweeper wakes the conversation grain of an old row.
CREATE TABLE outbox (
    conversation    text PRIMARY KEY,
    last_message_id bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settings (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);
