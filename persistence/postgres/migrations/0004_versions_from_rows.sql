-- A conversation's version is the highest version of its events, and a queue's end
-- the highest last_seq of its ranges: appends no longer rewrite a stream row per
-- conversation and per recipient. A user's row in streams stays, as the row a commit
-- locks to be the queue's only writer for its duration.
DELETE FROM streams WHERE id NOT LIKE 'u:%';
COMMENT ON TABLE streams IS 'one row per user sync queue (u:<user>): locked by a commit that appends to the queue; version is unused';
