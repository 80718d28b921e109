-- Feedback on answers (issue 10): 👍/👎 per person per answer, sources flagged as wrong or
-- outdated, and threads handed to a person. `chatops golden from-feedback` turns the
-- ratings, with the reviewers' edits and rejections, into candidate golden-set entries.

-- One rating per person per answer: clicking again changes it (the unique key), never
-- adds a second. The reason is what a 👎 person typed in "what was wrong", as typed.
CREATE TABLE answer_ratings (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    run_id          bigint NOT NULL REFERENCES agent_runs(id),
    slack_user_id   text NOT NULL,
    rating          text NOT NULL CHECK (rating IN ('up', 'down')),
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, slack_user_id)
);
CREATE INDEX answer_ratings_tenant_time ON answer_ratings (tenant_id, updated_at);

-- A cited document someone marked as wrong or outdated. The flag holds the document's
-- content hash at that moment: once the document is re-ingested with new content, the
-- flag no longer demotes it (whoever fixed the source fixed what was flagged).
CREATE TABLE knowledge_source_flags (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    document_id     bigint NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    slack_user_id   text NOT NULL,
    run_id          bigint REFERENCES agent_runs(id),
    content_hash    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, slack_user_id)
);
CREATE INDEX knowledge_source_flags_tenant ON knowledge_source_flags (tenant_id);

-- Search reads the flags inside the tenant scope (rag/tenancy.py), as the restricted
-- knowledge role: the same row-level security as the documents they flag.
ALTER TABLE knowledge_source_flags ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON knowledge_source_flags TO chatops_knowledge
    USING (tenant_id = knowledge_tenant()) WITH CHECK (tenant_id = knowledge_tenant());
GRANT SELECT ON knowledge_source_flags TO chatops_knowledge;

-- Who "Ask a human" hands a thread to: "<@U…>" or "<!subteam^S…>", set by an admin with
-- `/agent handoff`.
ALTER TABLE tenant_settings ADD COLUMN handoff_target text;

-- A thread handed to a person: once per conversation. notice_ts is the message that told
-- them; NULL means the notice has not been posted yet, and the next click posts it.
CREATE TABLE thread_handoffs (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    conversation_id bigint NOT NULL UNIQUE REFERENCES conversations(id),
    run_id          bigint REFERENCES agent_runs(id),
    requested_by    text NOT NULL,
    target          text NOT NULL,
    notice_ts       text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
