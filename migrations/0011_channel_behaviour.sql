-- Agent templates in production and per-channel behaviour (issues 7 and 10).

-- The template a tenant's channels use unless a channel names its own; NULL: no template
-- (every tool the deployment has, the default prompt, all knowledge).
ALTER TABLE tenant_settings ADD COLUMN agent_template text;

-- What an admin set for one channel with `/agent channel`. A NULL column means "the
-- default": the tenant's template, answers only when mentioned, public answers (private
-- in Slack Connect channels), the template's collections (only `public` in Slack Connect
-- channels). An empty allowed_usergroups means anyone in the channel may ask.
CREATE TABLE channel_settings (
    tenant_id           bigint NOT NULL REFERENCES tenants(id),
    slack_channel_id    text NOT NULL,
    agent_template      text,
    reply_mode          text CHECK (reply_mode IN ('mention', 'every_question')),
    visibility          text CHECK (visibility IN ('public', 'private')),
    collections         text[],
    allowed_usergroups  text[] NOT NULL DEFAULT '{}',
    -- conversations.info's is_ext_shared, cached: asked again when older than a day.
    is_ext_shared       boolean,
    ext_shared_checked_at timestamptz,
    updated_by          text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, slack_channel_id)
);

-- The first run of a thread pins what it ran with (template name and versions, reply
-- mode, visibility, collections); later turns use the pin even if the channel changed.
ALTER TABLE conversations ADD COLUMN pinned_settings jsonb;

-- Which template and prompt a run used, for audits and for comparing template versions.
ALTER TABLE agent_runs
    ADD COLUMN template_name text,
    ADD COLUMN template_version integer,
    ADD COLUMN prompt_version integer;

-- A template's approval rules travel with the actions its runs propose.
ALTER TABLE pending_actions ADD COLUMN four_eyes boolean NOT NULL DEFAULT false;

-- Answers shown only to the asker (ephemeral), kept so "Share with channel" can post
-- them once, whoever clicks twice.
CREATE TABLE private_answers (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    run_id          bigint NOT NULL UNIQUE REFERENCES agent_runs(id),
    slack_channel_id text NOT NULL,
    slack_thread_ts text NOT NULL,
    asked_by        text NOT NULL,
    text            text NOT NULL,
    ephemeral_ts    text,
    shared_ts       text,  -- the public copy, once shared
    shared_by       text,
    shared_at       timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
