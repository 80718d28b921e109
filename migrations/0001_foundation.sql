-- The first schema: multi-tenant from the first table. Every row that belongs to a
-- customer carries tenant_id, and every query the product runs filters by it.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tenants (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    -- A tenant is a Slack workspace (or an Enterprise Grid org); email domains come later.
    slack_team_id   text UNIQUE,
    slack_enterprise_id text,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE slack_installations (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    team_id         text NOT NULL,
    enterprise_id   text NOT NULL DEFAULT '',
    app_id          text,
    bot_id          text NOT NULL,
    bot_user_id     text NOT NULL,
    bot_token       text NOT NULL,
    bot_scopes      text NOT NULL DEFAULT '',
    installer_user_id text,
    is_enterprise_install boolean NOT NULL DEFAULT false,
    -- The whole installation as Slack returned it, for fields we do not model yet.
    raw             jsonb NOT NULL DEFAULT '{}'::jsonb,
    installed_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, team_id)
);

CREATE TABLE oauth_states (
    state       text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

-- One request as it arrived (a Slack event now, an email later). The listener writes the
-- row before it acknowledges, so an acknowledged request is never lost; the unique key
-- turns Slack's retries of the same event into no-ops.
CREATE TABLE inbound_requests (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    source          text NOT NULL CHECK (source IN ('slack', 'email')),
    external_id     text NOT NULL,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    retry_count     integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'queued', 'running', 'done', 'failed', 'ignored')),
    error           text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    finished_at     timestamptz,
    UNIQUE (tenant_id, source, external_id)
);
CREATE INDEX inbound_requests_unqueued ON inbound_requests (received_at) WHERE status = 'received';

CREATE TABLE conversations (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    channel_kind    text NOT NULL CHECK (channel_kind IN ('slack', 'email')),
    -- Slack: "<channel id>:<thread ts>"; email: the thread's root Message-ID.
    external_key    text NOT NULL,
    slack_channel_id text,
    slack_thread_ts text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, channel_kind, external_key)
);

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    author          text NOT NULL,
    text            text NOT NULL,
    external_id     text NOT NULL,  -- Slack message ts
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, external_id)
);

CREATE TABLE agent_runs (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    request_id      bigint NOT NULL UNIQUE REFERENCES inbound_requests(id),
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'answered', 'failed')),
    mode            text NOT NULL DEFAULT 'llm' CHECK (mode IN ('llm', 'offline')),
    attempts        integer NOT NULL DEFAULT 0,
    -- The reply message in the thread: set once, so a retried run edits it instead of
    -- posting a second one. reply_intent_at is written *before* posting, so a run that
    -- died between posting and recording knows to look for its message first.
    reply_intent_at timestamptz,
    reply_ts        text,
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE TABLE agent_steps (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES agent_runs(id),
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    position        integer NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('plan', 'retrieve', 'act', 'draft', 'verify', 'respond')),
    output          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, position)
);

CREATE TABLE llm_usage (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    run_id          bigint REFERENCES agent_runs(id),
    provider        text NOT NULL,
    model           text NOT NULL,
    purpose         text NOT NULL,
    outcome         text NOT NULL,  -- ok, malformed, timeout, rate_limited, error, circuit_open
    prompt_tokens   integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cost_usd        numeric(12, 6) NOT NULL DEFAULT 0,
    latency_ms      integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_usage_tenant_time ON llm_usage (tenant_id, created_at);

-- Append-only: who did what, when. Updates and deletes are refused by the database.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint REFERENCES tenants(id),  -- NULL for events before a tenant is known
    actor           text NOT NULL,
    action          text NOT NULL,
    subject         text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
