-- Contacts: the users a user added, whose presence it watches. The second index
-- answers "who added me" (a user's watchers) without a scan.
CREATE TABLE contacts (
    user_id    text   NOT NULL REFERENCES users (id),
    contact_id text   NOT NULL REFERENCES users (id),
    added_at   bigint NOT NULL, -- Unix ms
    PRIMARY KEY (user_id, contact_id),
    CHECK (user_id <> contact_id)
);
CREATE INDEX contacts_watchers ON contacts (contact_id, user_id);

-- Who sees a user's presence: everyone, only the users it added itself (contacts),
-- or nobody (always offline, no last-seen time).
ALTER TABLE users ADD COLUMN presence_visibility text NOT NULL DEFAULT 'everyone'
    CHECK (presence_visibility IN ('everyone', 'contacts', 'nobody'));
