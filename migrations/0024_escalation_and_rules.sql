-- Escalation: an action nobody decided within `escalate_after` is shown, once, to a
-- second group of approvers (people and user groups, kept as the mentions Slack
-- renders: <@U…>, <!subteam^S…>), who may then decide it too.
ALTER TABLE tenant_settings
    ADD COLUMN escalate_to    text[],
    ADD COLUMN escalate_after interval,
    -- How long an "Approve & always allow" rule lasts unless the command says otherwise.
    ADD COLUMN rule_days      integer CHECK (rule_days BETWEEN 1 AND 365);

-- "Approve & always allow": this tool, for this requester (or, for email, to this
-- recipient domain), approved without a card decision until the rule expires or is
-- revoked. `number` is the tenant's own short number, the one people type to revoke.
CREATE TABLE action_rules (
    id                  bigserial PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants(id),
    number              integer NOT NULL,
    tool                text NOT NULL,
    requester           text,  -- whose requests it covers (a Slack user id, or an email sender)
    recipient_domain    text,  -- or: email to anyone at this domain
    created_by          text NOT NULL,
    created_from_action bigint UNIQUE REFERENCES pending_actions(id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    revoked_by          text,
    revoked_at          timestamptz,
    UNIQUE (tenant_id, number),
    CHECK ((requester IS NULL) <> (recipient_domain IS NULL))
);
CREATE INDEX action_rules_live ON action_rules (tenant_id, tool) WHERE revoked_at IS NULL;

ALTER TABLE pending_actions
    ADD COLUMN escalated_at      timestamptz,
    ADD COLUMN escalated_to      text[],  -- who it was escalated to, as then configured
    -- The domains an email action goes to (never the addresses), read from the real
    -- recipients when it was proposed: what a recipient-domain rule and the policy's
    -- always-review domains are judged by.
    ADD COLUMN recipient_domains text[],
    ADD COLUMN allowed_by_rule   bigint REFERENCES action_rules(id);
