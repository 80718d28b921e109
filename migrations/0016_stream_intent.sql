-- A reply streamed with chat.startStream cannot carry Slack metadata until it stops, so
-- its start is recorded around the call: stream_intent_at just before, stream_ts (and
-- reply_ts) once Slack answered. A retried run that finds an intent with no stream_ts
-- (the worker died between Slack creating the stream and hearing back) looks for the
-- stream in the thread; one that finds stream_ts closes it. Either way it finishes that
-- message instead of starting a second answer (bot/agent/live_reply.py).
ALTER TABLE agent_runs ADD COLUMN stream_intent_at timestamptz;
ALTER TABLE agent_runs ADD COLUMN stream_ts text;
