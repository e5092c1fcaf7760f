-- Logout (DELETE /v1/sessions/current) revokes a device's tokens: a token carries
-- its device's token generation when it was issued, and is valid only while the
-- device is still at that generation. A logout moves it on.
ALTER TABLE devices ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;

-- The token signing key no longer lives in the database (security review, finding
-- 8): anyone who could read this table could mint a token for any user. Nodes now
-- take it from their configuration or a key file; tokens signed with the old key
-- stop being valid.
DELETE FROM settings WHERE key = 'token_secret';
