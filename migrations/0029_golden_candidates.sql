-- Golden-set candidates an admin made with one click on the `/agent feedback` view
-- (review/golden_cases.py): the same candidate `chatops golden from-feedback` prints,
-- kept until `chatops golden saved` writes it out for a person to finish and accept.
CREATE TABLE golden_candidates (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    -- What it was made from: 'run:<agent run>' (a 👎 with a reason) or
    -- 'review:<reviewer_feedback row>' (an approver's edit or rejection).
    source      text NOT NULL CHECK (source ~ '^(run|review):[0-9]+$'),
    template    text NOT NULL,
    origin      text NOT NULL,
    candidate   jsonb NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, source)
);
CREATE INDEX golden_candidates_by_template ON golden_candidates (tenant_id, template, created_at);
