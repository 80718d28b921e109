-- Connector credentials (API tokens) per tenant, sealed with AES-GCM by the application
-- (connectors/credentials.py): the database never sees a token in clear.
CREATE TABLE connector_credentials (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    connector       text NOT NULL,  -- hubspot, zendesk
    ciphertext      bytea NOT NULL,  -- nonce || AES-GCM(token), tenant and connector as AAD
    created_by      text NOT NULL,
    updated_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, connector)
);
