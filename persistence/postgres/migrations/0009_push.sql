-- Push notifications to devices with no connection.
--
-- A device's push target is its devices row's provider and token (columns kept
-- since version 1), valid until push_until (Unix ms): the expiry of the newest
-- session of that device, so that a device whose sessions have all ended, or that
-- logged out (the target is cleared), is pushed nothing.
ALTER TABLE devices ADD COLUMN push_until bigint NOT NULL DEFAULT 0;
CREATE INDEX devices_push ON devices (user_id) WHERE push_provider <> '';

-- A user's online row stays for the presence grace after its last connection goes
-- (watchers see no flap); connected says whether a connection is attached now, which
-- is what decides a push.
ALTER TABLE presence_online ADD COLUMN connected boolean NOT NULL DEFAULT true;

-- A member's settings in one conversation: muted gets it no push from there.
CREATE TABLE conversation_settings (
    user_id      text    NOT NULL REFERENCES users (id),
    conversation text    NOT NULL,
    muted        boolean NOT NULL,
    PRIMARY KEY (user_id, conversation)
);

-- The push outbox: a row per device with a notification to send, written by the
-- commit that puts a message into its user's queue while no device of the user is
-- connected. It says only where in the queue the notification starts: later
-- messages before it is sent find the row there and write nothing (collapse), and
-- the sender reads the count and the latest message from the queue. A node sends a
-- row once next_at has passed, holding it until claimed_until; a send that fails
-- moves next_at on (backoff) until the deadline, counted from created_at. Times are
-- Unix ms of PostgreSQL's clock (parley_now_ms), so that the nodes' clocks do not
-- matter.
CREATE TABLE push_outbox (
    user_id       text    NOT NULL,
    device_id     text    NOT NULL,
    from_seq      bigint  NOT NULL, -- the first queue entry it stands for
    created_at    bigint  NOT NULL,
    next_at       bigint  NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    claimed_until bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id)
);
CREATE INDEX push_outbox_due ON push_outbox (next_at);

CREATE FUNCTION parley_now_ms() RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;
