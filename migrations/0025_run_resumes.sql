-- A run resumes when the action it proposed is decided (issue 15): approved and done,
-- failed, or rejected, the run's conversation continues with that outcome as a new run.

-- The resumed run is a run of the same request, tied to the action whose outcome it
-- continues from: one resumed run per action outcome, however often its job is sent.
ALTER TABLE agent_runs ADD COLUMN resumes_action_id bigint UNIQUE REFERENCES pending_actions(id);
-- A request still has one first run; its resumed runs share its request id.
ALTER TABLE agent_runs DROP CONSTRAINT agent_runs_request_id_key;
CREATE UNIQUE INDEX agent_runs_first_run ON agent_runs (request_id) WHERE resumes_action_id IS NULL;
CREATE INDEX agent_runs_resumed ON agent_runs (request_id) WHERE resumes_action_id IS NOT NULL;

-- The outbox of the resume job. resume_due_at is set in the same UPDATE that moves a
-- resumable action (one a Slack agent run proposed) to executed, failed or rejected, so a
-- decided action cannot lose its resume; resume_queued_at once its job is sent. The
-- review sweep sends the job for actions due and never sent.
ALTER TABLE pending_actions ADD COLUMN resume_due_at timestamptz;
ALTER TABLE pending_actions ADD COLUMN resume_queued_at timestamptz;
CREATE INDEX pending_actions_resume_unsent ON pending_actions (resume_due_at)
    WHERE resume_due_at IS NOT NULL AND resume_queued_at IS NULL;
