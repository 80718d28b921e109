"""What every kind of request's run shares: the worker's dependencies, the run row, the
usage ledger, and recording a failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from opentelemetry.trace import NoOpTracer, Tracer
from psycopg import Connection
from slack_sdk import WebClient

from bot.observability.agent_steps import StepObserver
from connectors.email.flood_gate import FloodLimits
from connectors.email.parse import ParseLimits
from connectors.email.raw_mail import RawMailCipher
from connectors.slack.web_client import is_transient
from core.agent_template import AgentTemplate
from core.db import Pool, is_unavailable
from core.knowledge import Retriever
from core.llm.pricing import cost_usd
from core.llm.providers import CallRecord
from core.llm.structured import StructuredLLM
from core.metrics import Metrics
from core.store import audit, requests
from core.tools import ToolRegistry
from guardrails.facade import Guardrails
from rag.attribution import Grounding

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerDeps:
    pool: Pool
    llm: StructuredLLM | None
    retriever: Retriever
    tools: ToolRegistry
    slack_client: Callable[[str], WebClient]  # bot token -> client
    max_steps: int
    prices: dict[str, tuple[Decimal, Decimal]]
    guardrails: Guardrails
    email_replies_per_hour: int = 5  # per email thread, so two agents cannot ping-pong
    # Drafts per sender and per inbox an hour; beyond, emails wait on a digest card.
    email_flood: FloodLimits = field(default_factory=FloodLimits)
    # The worker's Prometheus series; a fresh registry of its own when not given (tests).
    metrics: Metrics = field(default_factory=Metrics.create)
    tracer: Tracer = field(default_factory=NoOpTracer)  # bot/observability/tracing.py
    # How long the real values behind a conversation's placeholders are kept; the sweep
    # forgets older ones.
    vault_retention: timedelta = timedelta(days=30)
    # The deployment's agent templates by name (templates/*.yaml); none: no tenant or
    # channel can pick one, and every run has all tools and the default prompt.
    templates: Mapping[str, AgentTemplate] = field(default_factory=dict)
    # How Verify grounds drafts: the worker's embedder and the unsupported-sentence rule.
    grounding: Grounding = field(default_factory=Grounding)
    # Times one request's conversation may resume after actions it proposed were decided
    # (bot/agent/resume.py), so a reject / propose-again loop ends.
    max_resumes: int = 3
    # The deployment's mail key: opens the raw mail the SMTP listener sealed, and seals a
    # drafted reply's message in its pending action (the reply_email tool opens it with
    # the same key when sending); None: mail stored as built.
    mail_cipher: RawMailCipher | None = None
    # How much of an email the worker reads (attachments, PDFs, MIME parts).
    email_parse_limits: ParseLimits = field(default_factory=ParseLimits)

    @property
    def step_observer(self) -> StepObserver:
        """Spans and counts each agent step a run computes."""
        return StepObserver(self.metrics, self.tracer)


def mark_failed(conn: Connection[dict[str, Any]], request_id: int, reason: str) -> bool:
    """The request could not be answered; keep why, for admins and the audit trail.
    False, and nothing recorded, if it may not fail (core/store/requests.py)."""
    tenant_id = requests.fail(conn, request_id, reason)
    if tenant_id is None:
        return False
    conn.execute(
        "UPDATE agent_runs SET status = 'failed', error = %s, finished_at = now()"
        " WHERE request_id = %s AND tenant_id = %s AND status = 'running'",
        (reason, request_id, tenant_id),
    )
    audit.append(
        conn,
        audit.Entry(
            tenant_id=tenant_id,
            actor="agent",
            action="request.failed",
            subject=str(request_id),
            details={"reason": reason},
        ),
    )
    return True


def passes_by_itself(exc: BaseException) -> bool:
    """A failure that waiting cures: the database unreachable or restarting, Slack
    rate-limiting us or briefly down. Worth another try later, not a verdict."""
    return is_unavailable(exc) or is_transient(exc)


def record_failure(pool: Pool, request_id: int, reason: str) -> bool:
    """`mark_failed` on a connection of its own (the caller's may be the one a database
    restart killed). Never raises: if the database is still away, the request stays open
    and the stranded-request sweep queues it again once it is back (bot/queue/stranded.py).
    Returns whether the failure was recorded."""
    try:
        with pool.connection() as conn:
            mark_failed(conn, request_id, reason)
    except Exception:
        log.exception("request.failure_not_recorded", request_id=request_id)
        return False
    return True


def start_run(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    conversation_id: int,
    request_id: int,
    has_llm: bool,
) -> dict[str, Any]:
    row = conn.execute(
        """INSERT INTO agent_runs (tenant_id, conversation_id, request_id, mode, attempts)
           VALUES (%s, %s, %s, %s, 1)
           ON CONFLICT (request_id) WHERE resumes_action_id IS NULL
             DO UPDATE SET attempts = agent_runs.attempts + 1
           RETURNING *""",
        (tenant_id, conversation_id, request_id, "llm" if has_llm else "offline"),
    ).fetchone()
    assert row is not None
    if row["attempts"] > 1:
        log.info("run.resumed", attempt=row["attempts"])
    return row


def start_resumed_run(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    conversation_id: int,
    request_id: int,
    action_id: int,
) -> dict[str, Any]:
    """The run that continues a request's conversation once the action ``action_id`` it
    proposed was decided: one per action, so a retried resume job finds the same run (and
    replays its steps) instead of starting a second one."""
    row = conn.execute(
        """INSERT INTO agent_runs
             (tenant_id, conversation_id, request_id, resumes_action_id, mode, attempts)
           VALUES (%s, %s, %s, %s, 'llm', 1)
           ON CONFLICT (resumes_action_id) DO UPDATE SET attempts = agent_runs.attempts + 1
           RETURNING *""",
        (tenant_id, conversation_id, request_id, action_id),
    ).fetchone()
    assert row is not None
    if row["attempts"] > 1:
        log.info("run.resumed", attempt=row["attempts"])
    return row


def usage_recorder(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    run_id: int | None,
    prices: dict[str, tuple[Decimal, Decimal]],
    metrics: Metrics | None = None,
    purpose: str = "agent",
) -> Callable[[CallRecord], None]:
    """Every model call of a run (None: of work that is no run, a digest), into
    `llm_usage` and, when given, the worker's metrics."""

    def record(call: CallRecord) -> None:
        cost = cost_usd(call.model, call.prompt_tokens, call.completion_tokens, prices)
        conn.execute(
            """INSERT INTO llm_usage (tenant_id, run_id, provider, model, purpose, outcome,
                 prompt_tokens, completion_tokens, cost_usd, latency_ms)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                tenant_id,
                run_id,
                call.provider,
                call.model,
                purpose,
                call.outcome,
                call.prompt_tokens,
                call.completion_tokens,
                cost,
                call.latency_ms,
            ),
        )
        if metrics is not None:
            metrics.record_llm_call(
                tenant_id=tenant_id,
                provider=call.provider,
                model=call.model,
                outcome=call.outcome,
                prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens,
                latency_ms=call.latency_ms,
                cost_usd=cost,
            )

    return record
