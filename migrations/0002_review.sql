-- Human review: external actions wait for a person's yes in the tenant's approval channel.

CREATE TABLE tenant_settings (
    tenant_id           bigint PRIMARY KEY REFERENCES tenants(id),
    approval_channel_id text,
    approver_group_id   text,  -- a Slack user group whose members may approve
    four_eyes           boolean NOT NULL DEFAULT false,  -- requesters cannot approve their own
    approval_ttl        interval NOT NULL DEFAULT interval '24 hours',
    reminder_before     interval NOT NULL DEFAULT interval '2 hours',
    paused              boolean NOT NULL DEFAULT false,  -- the tenant's kill switch
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_approvers (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    slack_user_id   text NOT NULL,
    added_by        text NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, slack_user_id)
);

-- People who may run the changing /agent commands besides the workspace's own admins.
CREATE TABLE tenant_admins (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    slack_user_id   text NOT NULL,
    added_by        text NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, slack_user_id)
);

CREATE TABLE pending_actions (
    id                  bigserial PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants(id),
    conversation_id     bigint NOT NULL REFERENCES conversations(id),
    run_id              bigint REFERENCES agent_runs(id),
    tool                text NOT NULL,
    summary             text NOT NULL,  -- "Post in #sales", for people
    payload             jsonb NOT NULL,  -- what will run: the edited version once edited
    original_payload    jsonb NOT NULL,  -- what the agent proposed, kept after edits
    requested_by        text NOT NULL,  -- Slack user id of the person the agent acted for
    reason              text NOT NULL,
    citations           jsonb NOT NULL DEFAULT '[]'::jsonb,
    flags               jsonb NOT NULL DEFAULT '[]'::jsonb,  -- e.g. suspected prompt injection
    -- Stable per proposed call, so a replayed run cannot propose the same action twice,
    -- and handed to the target system where it accepts one.
    idempotency_key     text NOT NULL UNIQUE,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'approved', 'executing', 'executed', 'rejected',
                           'expired', 'failed')),
    approval_channel_id text,
    approval_ts         text,  -- the approval request message
    approval_intent_at  timestamptz,  -- set before posting it, as for replies
    edit_requested_by   text,
    edited_by           text,
    edited_at           timestamptz,
    decided_by          text,
    decided_at          timestamptz,
    reject_reason       text,
    queued_at           timestamptz,  -- approved and handed to a worker (the outbox mark)
    executed_at         timestamptz,
    result              jsonb,
    error               text,
    expires_at          timestamptz NOT NULL,
    reminded_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_actions_by_message ON pending_actions (tenant_id, approval_channel_id, approval_ts);
CREATE INDEX pending_actions_open ON pending_actions (status, expires_at)
    WHERE status IN ('pending', 'approved', 'executing');

-- What reviewers changed or refused, so later drafts learn from it.
CREATE TABLE reviewer_feedback (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    template        text NOT NULL DEFAULT 'default',
    action_id       bigint REFERENCES pending_actions(id),
    kind            text NOT NULL CHECK (kind IN ('edit', 'reject')),
    original        text NOT NULL,
    corrected       text,  -- the edited text
    reason          text,  -- why it was rejected
    search          tsvector GENERATED ALWAYS AS (to_tsvector('english', original)) STORED,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviewer_feedback_search ON reviewer_feedback USING gin (search);

-- Nobody, not even the application's own role, may rewrite history. (The trigger from
-- 0001 already refuses; this also takes the privilege away.)
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- Row triggers do not fire on TRUNCATE; this one does.
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
