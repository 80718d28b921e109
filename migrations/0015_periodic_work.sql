-- Periodic work run by the workers (bot/queue/scheduler.py): one row per task. A worker
-- runs a task only after moving its next_run_at forward with one conditional UPDATE, so
-- however many workers there are, each due time is taken by exactly one of them.
CREATE TABLE periodic_tasks (
    name             text PRIMARY KEY,
    next_run_at      timestamptz NOT NULL,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_worker      text,  -- "host:pid" of the worker that ran it last
    last_error       text,  -- the exception's type and message, NULL when the run succeeded
    runs             bigint NOT NULL DEFAULT 0
);

-- The stranded-request sweep looks for open requests whose job the queue no longer holds
-- (Redis lost, a worker gone with its job); this keeps that look cheap.
CREATE INDEX inbound_requests_open ON inbound_requests (coalesce(queued_at, received_at))
    WHERE status IN ('received', 'queued', 'running');
-- How many times the sweep queued a request again (for operators: a number that keeps
-- growing means jobs keep disappearing from the queue).
ALTER TABLE inbound_requests ADD COLUMN requeued integer NOT NULL DEFAULT 0;
