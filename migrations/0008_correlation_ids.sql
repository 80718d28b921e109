-- The request id a listener gives each request (see bot/observability/correlation.py),
-- kept with it so a request re-queued by the sweeper keeps its id in every log line.
ALTER TABLE inbound_requests ADD COLUMN correlation_id text;

-- The worker sums a request's model time when it observes its draft latency.
CREATE INDEX llm_usage_run ON llm_usage (run_id);
