-- Who a Slack user is, as `users.info` last said: their organisation and whether they
-- are a workspace admin. Read before asking Slack again (review/authority.py), so an
-- admin check costs one indexed read while fresh, and a rate-limited or unreachable
-- Slack still leaves the last known answer for `/agent pause`.
CREATE TABLE slack_user_checks (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    slack_user_id   text NOT NULL,
    team_id         text NOT NULL DEFAULT '',
    enterprise_id   text NOT NULL DEFAULT '',
    is_admin        boolean NOT NULL,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, slack_user_id)
);

-- Signed slash commands and interactions already taken, by a digest of their
-- (timestamp, signature) pair: the same pair again within Slack's 5-minute window is a
-- replay and is refused (bot/intake/replay_guard.py). Rows older than the window are
-- deleted by the inserts that follow them.
CREATE TABLE slack_seen_requests (
    digest          bytea PRIMARY KEY,
    seen_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_seen_requests_age ON slack_seen_requests (seen_at);
