-- Groups: membership events live in the group's conversation stream beside its
-- messages. kind 0 is a message; other kinds are parley.v1.GroupEvent payloads.
ALTER TABLE conversation_events ADD COLUMN kind smallint NOT NULL DEFAULT 0;
CREATE INDEX conversation_events_membership ON conversation_events (conversation, version) WHERE kind <> 0;
