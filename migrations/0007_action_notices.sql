-- The notes review posts in a requester's thread about an action's outcome ("approved and
-- done", "rejected", the reason...), one per action and outcome. Recording the intent
-- before posting, and the message's ts after, makes a retried job skip a note it already
-- posted without reading the thread back from Slack (which cost a history read of up to
-- 200 messages per note, and grew with every note in a busy thread).
CREATE TABLE action_notices (
    action_id   bigint NOT NULL REFERENCES pending_actions(id),
    outcome     text NOT NULL,
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    intent_at   timestamptz NOT NULL DEFAULT now(),
    posted_ts   text,
    PRIMARY KEY (action_id, outcome)
);
