-- Who may join an email conversation: a message naming an earlier one (In-Reply-To,
-- References) joins it only if its sender took part in it ('sender'), or anyone at the
-- sender's domain did ('domain'); otherwise it starts a conversation of its own
-- (connectors/email/threads.py).
ALTER TABLE tenant_settings
    ADD COLUMN email_thread_scope text NOT NULL DEFAULT 'sender'
        CHECK (email_thread_scope IN ('sender', 'domain'));

-- Digest cards: beyond the per-sender or per-inbox limit, new email requests are listed
-- on one card per inbox and hour instead of a card each (review/email_digest.py).
CREATE TABLE email_digests (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    inbox           text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    approval_channel_id text,
    approval_ts     text,
    post_intent_at  timestamptz  -- set before posting, as for approval requests
);
CREATE INDEX email_digests_open ON email_digests (tenant_id, inbox, opened_at);

-- One row per email request that reached the flood gate: drafted (a card of its own) or
-- held (listed on a digest). The hour's counts per sender and per inbox come from here.
CREATE TABLE email_intake_gate (
    request_id      bigint PRIMARY KEY REFERENCES inbound_requests(id),
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    inbox           text NOT NULL,
    sender          text NOT NULL,
    subject         text NOT NULL DEFAULT '',
    outcome         text NOT NULL CHECK (outcome IN ('drafted', 'held')),
    digest_id       bigint REFERENCES email_digests(id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_intake_gate_inbox ON email_intake_gate (tenant_id, inbox, created_at);
CREATE INDEX email_intake_gate_sender ON email_intake_gate (tenant_id, sender, created_at);
CREATE INDEX email_intake_gate_digest ON email_intake_gate (digest_id) WHERE digest_id IS NOT NULL;
