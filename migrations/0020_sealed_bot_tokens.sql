-- Slack bot tokens sealed at rest, like connector credentials: nonce || AES-GCM(token)
-- with the tenant as associated data (bot/intake/installations.py). Rows written before
-- this are sealed by the application (`chatops migrate`, and every worker at start),
-- which then empties the plaintext column; it stays only so older code reading it finds
-- an empty string rather than a missing column.
ALTER TABLE slack_installations ADD COLUMN bot_token_sealed bytea;
ALTER TABLE slack_installations ALTER COLUMN bot_token SET DEFAULT '';
