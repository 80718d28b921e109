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
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id, ts)
);
CREATE INDEX slack_read_messages_range ON slack_read_messages (tenant_id, channel_id, ts_num);

-- The span of a channel's history read without a gap: every message from oldest_ts to
-- newest_ts is in slack_read_messages.
CREATE TABLE slack_read_spans (
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    channel_id  text NOT NULL,
    oldest_ts   numeric NOT NULL,
    newest_ts   numeric NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);
