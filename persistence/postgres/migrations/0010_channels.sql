-- Channels: conversations of up to limits.maxChannelMembers whose messages are
-- stored once, in the channel's conversation stream (no queue row per member), and
-- read by the members (fan-out on read). Their changes are events in that stream
-- (parley.v1.ChannelEvent, kinds 11..14); these two tables are the events'
-- projection, written in the same commit as each event, so that a grain, a sync or
-- a REST call reads a member or a channel's settings without replaying its stream,
-- and nothing holds every member in memory.
CREATE TABLE channels (
    id           text    PRIMARY KEY,   -- the conversation id, channel:<id>
    name         text    NOT NULL,
    owner        text    NOT NULL REFERENCES users (id),
    mode         text    NOT NULL,      -- broadcast or open
    public       boolean NOT NULL,
    created_id   bigint  NOT NULL,      -- the CHANNEL_CREATED event's id
    member_count integer NOT NULL DEFAULT 0
);

-- One row per member: its role (0 member, 1 admin, 2 owner), the id of the event
-- that added it, and its read position (a message id; only moves forward), which is
-- rewritten in place (fillfactor 80: HOT updates, no index entry per read). The
-- second index answers "the channels of a user".
CREATE TABLE channel_members (
    channel   text     NOT NULL,
    user_id   text     NOT NULL,
    role      smallint NOT NULL DEFAULT 0,
    joined_id bigint   NOT NULL,
    read_id   bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, user_id)
) WITH (fillfactor = 80);
CREATE INDEX channel_members_user ON channel_members (user_id, channel);
