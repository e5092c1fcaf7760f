-- Who is online, cluster-wide: a row per user with a live connection, written by the
-- node whose user grain holds the user's connections (holder: its node-id lease
-- holder). A row whose holder no longer has a live lease (the node died) is ignored
-- by every reader, so a crash leaves nobody online for longer than a lease. A user
-- coming online finds its online watchers here, and a watcher coming online finds
-- its online contacts: no message to, and no write for, a user who is offline.
CREATE TABLE presence_online (
    user_id text   PRIMARY KEY REFERENCES users (id),
    holder  text   NOT NULL,
    since   bigint NOT NULL -- Unix ms
);
