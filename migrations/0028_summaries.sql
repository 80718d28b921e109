-- Catch-up summaries (bot/summaries/): the workspace's time zone, which "since Monday"
-- and a digest's "daily 09:00" are read in; NULL reads as UTC.
ALTER TABLE tenant_settings ADD COLUMN time_zone text;

-- Channel messages the app has read for a summary, so the next summary of the same
-- channel asks Slack only for newer ones (Slack rate-limits history reads). The text is
-- masked as every other stored text is (guardrails/at_rest.py).
CREATE TABLE slack_read_messages (
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    channel_id  text NOT NULL,
    ts          text NOT NULL,
    ts_num      numeric NOT NULL,  -- ts as a number, for ranges
    user_id     text NOT NULL DEFAULT '',
    text        text NOT NULL,
    reply_count integer NOT NULL DEFAULT 0,
    thread_ts   text,  -- a reply: its thread's parent; NULL for a top-level message
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id, ts)
);
CREATE INDEX slack_read_messages_range ON slack_read_messages (tenant_id, channel_id, ts_num);
CREATE INDEX slack_read_messages_thread ON slack_read_messages (tenant_id, channel_id, thread_ts)
    WHERE thread_ts IS NOT NULL;

-- The span of a channel's history read without a gap: every top-level message from
-- oldest_ts to newest_ts is in slack_read_messages. Replies are read per thread, from the
-- newest one stored.
CREATE TABLE slack_read_spans (
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    channel_id  text NOT NULL,
    oldest_ts   numeric NOT NULL,
    newest_ts   numeric NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);

-- Scheduled summaries: `/agent digest #channel daily 09:00 [to #other|me]`. The periodic
-- work (bot/summaries/digests.py) claims a due digest by moving next_due_at forward in one
-- conditional UPDATE, so each due time is claimed once across all workers, then queues
-- the job that writes and posts it.
CREATE TABLE summary_digests (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants(id),
    channel_id    text NOT NULL,        -- the channel summarised
    deliver_to    text NOT NULL,        -- a channel id, or a user id for "me" (their DM)
    personal      boolean NOT NULL,     -- deliver_to is the person who set it up
    cadence       text NOT NULL CHECK (cadence IN ('daily', 'weekdays')),
    at_time       time NOT NULL,        -- in the workspace's time zone
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    next_due_at   timestamptz NOT NULL,
    last_sent_at  timestamptz,
    sent_for      timestamptz,          -- the due time last posted, so a job retried skips it
    last_error    text                  -- why the last due time posted nothing, for people
);
CREATE INDEX summary_digests_due ON summary_digests (next_due_at);
CREATE INDEX summary_digests_tenant ON summary_digests (tenant_id, id);
