-- The email channel: which addresses reach which tenant, every message in and out with
-- its raw bytes, and the recipient domains a tenant lets the agent write to.

-- An inbox routes mail to exactly one tenant: either one full address
-- ('support@acme.example') or every address of a domain ('acme.example'). A full address
-- wins over its domain. Unknown recipients are refused at RCPT time.
CREATE TABLE tenant_inboxes (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    kind            text NOT NULL CHECK (kind IN ('address', 'domain')),
    address         text NOT NULL CHECK (address = lower(address) AND address <> ''),
    -- How the agent's replies to this inbox leave: a relay over SMTP, or the Gmail API
    -- acting as gmail_user.
    transport       text NOT NULL DEFAULT 'smtp' CHECK (transport IN ('smtp', 'gmail')),
    gmail_user      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'address') = (position('@' IN address) > 0)),
    UNIQUE (kind, address)
);
CREATE INDEX tenant_inboxes_tenant ON tenant_inboxes (tenant_id);

-- Every email the channel handled, in either direction, with its exact bytes. Threading
-- looks Message-IDs up here: a customer's reply to one of our replies names our
-- Message-ID in In-Reply-To, so outbound rows are part of the index too.
CREATE TABLE email_messages (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    conversation_id bigint REFERENCES conversations(id),
    direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    -- Normalised '<id@host>'; for inbound mail without one, a digest of the raw bytes.
    message_id      text NOT NULL,
    in_reply_to     text,
    "references"    text[] NOT NULL DEFAULT '{}',
    subject         text NOT NULL DEFAULT '',
    from_address    text NOT NULL DEFAULT '',
    -- The SMTP envelope: reverse-path ('' for bounces) and the accepted recipients.
    envelope_from   text NOT NULL DEFAULT '',
    envelope_to     text[] NOT NULL DEFAULT '{}',
    raw             bytea NOT NULL,
    size_bytes      integer NOT NULL,
    -- Inbound: request_id is the agent's work item; parse_error is set when the message
    -- could not be parsed (it is kept, and the request marked failed); auto_kind names
    -- why the agent must not answer (auto-reply, bounce, mailing list...).
    request_id      bigint REFERENCES inbound_requests(id),
    parse_error     text,
    auto_kind       text,
    -- Outbound: the Message-ID is the idempotency key of a send. 'sending' is written
    -- before anything is handed to the server, 'committing' just before the step after
    -- which the server may have accepted it; see connectors/email/outbound.py.
    transport       text CHECK (transport IN ('smtp', 'gmail')),
    status          text CHECK (status IN ('sending', 'committing', 'sent', 'failed', 'unknown')),
    attempts        integer NOT NULL DEFAULT 0,
    provider_message_id text,  -- Gmail's id of the sent message
    provider_thread_id  text,  -- Gmail's thread id
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CHECK ((direction = 'outbound') = (status IS NOT NULL)),
    -- Also the threading lookup: by tenant and Message-ID, either direction.
    UNIQUE (tenant_id, message_id, direction)
);
-- Raw mail is mostly base64 already: compressing it would cost CPU on every message
-- stored for little space.
ALTER TABLE email_messages ALTER COLUMN raw SET STORAGE EXTERNAL;
CREATE INDEX email_messages_conversation ON email_messages (conversation_id, created_at);

-- Domains the agent may send new mail to (the send_email tool), per tenant. Replies in
-- an existing thread go back to its participants and are not limited by this list.
CREATE TABLE tenant_email_allowlist (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    domain          text NOT NULL CHECK (domain = lower(domain) AND domain <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, domain)
);
