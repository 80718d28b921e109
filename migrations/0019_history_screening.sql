-- Earlier turns of a conversation, screened for prompt injection once each: keyed by a
-- digest of the turn's text within its conversation, with what the screen found (empty:
-- nothing). A later run reads the verdicts instead of screening the history again
-- (guardrails/history.py). Reasons only: the text itself is not kept here.
CREATE TABLE screened_turns (
    tenant_id        bigint NOT NULL REFERENCES tenants(id),
    conversation_key text NOT NULL,
    digest           bytea NOT NULL,
    reasons          jsonb NOT NULL DEFAULT '[]'::jsonb,
    screened_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, conversation_key, digest)
);
