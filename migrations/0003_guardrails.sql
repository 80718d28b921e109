-- Guardrails: per-tenant policy, the placeholder vault for personal data hidden from the
-- model, budget notices sent, and what the screens flagged in each conversation.

-- One policy document per tenant (PII, toxicity, injection, tools, budgets), validated
-- by guardrails.policy.TenantPolicy when read; a tenant without a row gets the defaults.
CREATE TABLE guardrail_policies (
    tenant_id       bigint PRIMARY KEY REFERENCES tenants(id),
    policy          jsonb NOT NULL,
    updated_by      text NOT NULL DEFAULT 'system',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The real values behind placeholders such as <EMAIL_1>, per conversation: the model
-- call and the approved action happen in different processes. Values are encrypted
-- (AES-GCM, bound to tenant, conversation and placeholder); value_digest is a keyed
-- HMAC, so the same value gets the same placeholder without decrypting every row and
-- without a plain hash that could be reversed by guessing.
CREATE TABLE pii_vault (
    tenant_id        bigint NOT NULL REFERENCES tenants(id),
    conversation_key text NOT NULL,
    placeholder      text NOT NULL,
    entity           text NOT NULL,
    value_digest     bytea NOT NULL,
    value_ciphertext bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, conversation_key, placeholder),
    UNIQUE (tenant_id, conversation_key, value_digest)
);
CREATE INDEX pii_vault_created ON pii_vault (created_at);

-- A budget warning or block notice goes to admins once per tenant, period and level; the
-- primary key is what makes it once, across any number of workers.
CREATE TABLE budget_notices (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    period          text NOT NULL CHECK (period IN ('day', 'month')),
    period_start    date NOT NULL,
    level           text NOT NULL CHECK (level IN ('warn', 'blocked')),
    sent_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period, period_start, level)
);

-- What the screens flagged, per conversation, so an approval handled in another process
-- shows it. Reasons only: never the flagged text itself.
CREATE TABLE guardrail_flags (
    id               bigserial PRIMARY KEY,
    tenant_id        bigint NOT NULL REFERENCES tenants(id),
    conversation_key text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('injection', 'toxicity', 'tool_denied', 'budget')),
    source           text NOT NULL,
    reasons          jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX guardrail_flags_conversation ON guardrail_flags (tenant_id, conversation_key, created_at);
