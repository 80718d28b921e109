"""`chatops worker`: a Dramatiq worker process running the agent loop.

Everything the jobs need is built here once, then handed to the actors explicitly.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage, TimeLimit, TimeLimitExceeded
from slack_sdk import WebClient

from bot.agent.resume import resume_run, stop_resumed_run
from bot.agent.run_request import fail_request, run_request
from bot.agent.runs import WorkerDeps, passes_by_itself
from bot.observability.circuits import CircuitCollector
from bot.observability.drafts import observe_draft
from bot.observability.exposition import serve_metrics
from bot.observability.tracing import (
    TRACE_OPTION,
    Tracing,
    build_tracing,
    current_trace_carrier,
)
from bot.queue.jobs import (
    APOLOGY_OPTIONS,
    DIGEST_OPTIONS,
    EXECUTE_ACTION,
    REQUEST_FAILED,
    RESUME_FAILED,
    RESUME_OPTIONS,
    RESUME_RUN,
    REVIEW_EVENT,
    REVIEW_OPTIONS,
    RUN_REQUEST,
    RUN_REQUEST_OPTIONS,
    SEND_DIGEST,
    SWEEP_ACTIONS,
    enqueue_execution,
    enqueue_request,
    enqueue_resume,
)
from bot.queue.middleware import AfterWarmUp, JobObservability
from bot.queue.periodic import periodic_tasks
from bot.queue.retrying import current_retries, retry_when
from bot.queue.scheduler import Scheduler
from bot.summaries.digests import send_digest
from connectors.email.attachments import ExtractLimits
from connectors.email.flood_gate import FloodLimits
from connectors.email.parse import ParseLimits
from connectors.email.raw_mail import RawMailCipher
from connectors.email.tools import reply_email_tool, send_email_tool
from connectors.mcp.toolset import load_mcp_tools
from connectors.registry import connector_tools
from connectors.slack.bot_tokens import seal_plaintext_tokens
from connectors.slack.read_tools import slack_read_tools
from connectors.slack.tools import post_to_channel_tool, reply_in_thread_tool
from connectors.slack.web_client import make_web_client
from core.agent_template import load_templates
from core.broker import build_broker, consumed_queues
from core.correlation import MESSAGE_OPTION, correlation_headers, current_correlation_id
from core.db import open_pool
from core.errors import StartupError
from core.llm.limits import job_deadline
from core.llm.pricing import DEFAULT_PRICES_PER_MTOK
from core.llm.providers import build_chain
from core.llm.structured import StructuredLLM
from core.metrics import Metrics
from core.queues import AGENT_QUEUE, KNOWLEDGE_QUEUE, REVIEW_QUEUE
from core.settings import Settings
from core.tools import Tool, ToolRegistry
from core.warmup import Warming
from guardrails.facade import build_guardrails, pii_detector
from rag.attribution import Grounding
from rag.embeddings import Embedder, LoadedOnFirstUse, embedder_from_settings
from rag.jobs import declare_ingest_actors
from rag.wiring import ingest_deps_from_settings, retriever_from_settings
from review.events import handle_review_request
from review.execute import execute_action
from review.sweep import sweep

if TYPE_CHECKING:
    from guardrails.pii import PiiDetector

log = structlog.get_logger(__name__)


def build_worker_deps(
    settings: Settings,
    embedder: Embedder,
    metrics: Metrics,
    tracing: Tracing,
    mcp_tools: Sequence[Tool] = (),
    detector: Warming[PiiDetector] | None = None,
) -> WorkerDeps:
    """`detector`: guardrails.facade.pii_detector(), which run_worker starts loading once
    the worker is ready; every screen waits for it (guardrails/redaction.py)."""
    providers = settings.llm_providers
    llm = None
    if providers:
        chain = build_chain(
            [(p.name, p.base_url, p.api_key.get_secret_value(), p.model) for p in providers],
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            circuit_failures=settings.llm_circuit_failures,
            circuit_reset=settings.llm_circuit_reset_seconds,
            tracer=tracing.tracer,
            limits=settings.llm_limits,
            timeouts={p.name: p.timeout_seconds for p in providers if p.timeout_seconds},
        )
        metrics.registry.register(CircuitCollector(chain))
        llm = StructuredLLM(
            chain,
            malformed_retries=settings.llm_malformed_retries,
            context_tokens=settings.llm_context_tokens,
            tool_calling=settings.llm_tool_calling,
        )
    else:
        log.warning("llm.offline_mode", hint="set OPENAI_BASE_URL or OPENAI_API_KEY")
    prices: dict[str, tuple[Decimal, Decimal]] = {**DEFAULT_PRICES_PER_MTOK, **settings.llm_prices}

    def slack_client(token: str) -> WebClient:
        # Clients are made inside a job, so they carry that job's request id.
        return make_web_client(token, settings.slack_api_url, headers=correlation_headers())

    pool = open_pool(
        settings.database_url,
        # A connection per job thread, the scheduler's two, and two to spare.
        max_size=settings.worker_threads + 4,
        timeout=settings.database_checkout_timeout_seconds,
    )
    guardrails = build_guardrails(settings, pool, detector)
    for line in guardrails.status().lines():
        log.info("guardrails.status", status=line)
    return WorkerDeps(
        pool=pool,
        llm=llm,
        retriever=retriever_from_settings(settings, pool, embedder),
        grounding=Grounding(embedder, settings.agent_unsupported_sentences),
        tools=ToolRegistry.of(
            post_to_channel_tool(slack_client),
            reply_in_thread_tool(slack_client),
            *slack_read_tools(slack_client),
            reply_email_tool(pool, settings, metrics),
            send_email_tool(pool, settings, metrics),
            *connector_tools(settings, pool),
            # Offered, checked by the tenant's tool policy and reviewed like the rest.
            *mcp_tools,
        ),
        slack_client=slack_client,
        max_steps=settings.agent_max_steps,
        max_resumes=settings.agent_max_resumes,
        prices=prices,
        guardrails=guardrails,
        email_replies_per_hour=settings.email_max_replies_per_thread_per_hour,
        email_flood=FloodLimits(
            per_sender=settings.email_max_drafts_per_sender_per_hour,
            per_inbox=settings.email_max_drafts_per_inbox_per_hour,
        ),
        metrics=metrics,
        tracer=tracing.tracer,
        vault_retention=timedelta(days=settings.guardrails_vault_retention_days),
        templates=load_templates(Path(settings.agent_templates_dir)),
        mail_cipher=RawMailCipher.from_settings(settings),
        email_parse_limits=email_parse_limits(settings),
    )


def email_parse_limits(settings: Settings) -> ParseLimits:
    return ParseLimits(
        attachments=ExtractLimits(
            max_chars=settings.email_attachment_text_max_chars,
            pdf_max_bytes=settings.email_pdf_max_bytes,
            pdf_max_pages=settings.email_pdf_max_pages,
        )
    )


DEFAULT_TIME_LIMIT_SECONDS = RUN_REQUEST_OPTIONS["time_limit"] / 1000
FAILED_REASON = "something went wrong on our side while answering"


def time_limit_reason(seconds: float) -> str:
    """Why a run that hit its time limit stopped, in the person's words."""
    limit = f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} seconds"
    return f"it took longer than the {limit} I may spend on one request"


def declare_actors(
    broker: dramatiq.Broker,
    deps: WorkerDeps,
    *,
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS,
) -> None:
    # Dramatiq's TimeLimit middleware interrupts a run that takes longer (it starts
    # watching on process_boot, which run_worker emits).
    run_options = {**RUN_REQUEST_OPTIONS, "time_limit": int(time_limit_seconds * 1000)}

    def run(request_id: int) -> None:
        started = time.monotonic()
        try:
            # The deadline also shortens the model's waits, so a socket read cannot keep
            # the interruption waiting.
            with job_deadline(time_limit_seconds), retry_when(passes_by_itself, run_options):
                run_request(deps, request_id)
        except TimeLimitExceeded:
            # Trying again would most likely take as long again, after the person has
            # already waited this long: apologise once, through the apology job (which
            # has retries of its own), and do not retry the run.
            log.error(
                "request.time_limit_exceeded", request_id=request_id, seconds=time_limit_seconds
            )
            _send_apology(broker, request_id, time_limit_reason(time_limit_seconds))
            return
        with deps.pool.connection() as conn:
            observe_draft(conn, deps.metrics, request_id, within=time.monotonic() - started + 1.0)

    def failed(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        request_id = message["args"][0]
        reason = retry_info.get("reason") or FAILED_REASON
        retries = current_retries()
        if retries == 0 and "reason" not in retry_info:
            log.error("request.retries_exhausted", request_id=request_id, **retry_info)
        # While the database or Slack cannot take the apology, it is tried again later;
        # the last try records the failure whatever happens.
        with retry_when(passes_by_itself, APOLOGY_OPTIONS):
            fail_request(
                deps,
                request_id,
                reason,
                final=retries >= APOLOGY_OPTIONS["max_retries"],
            )

    dramatiq.Actor(
        run,
        broker=broker,
        actor_name=RUN_REQUEST,
        queue_name=AGENT_QUEUE,
        priority=0,
        options=run_options,
    )

    resume_options = {**RESUME_OPTIONS, "time_limit": int(time_limit_seconds * 1000)}

    def resume(action_id: int) -> None:
        # A resumed run is a run: the same deadline, quiet retries, and on its time limit
        # no retry (the thread already has the action's outcome).
        try:
            with job_deadline(time_limit_seconds), retry_when(passes_by_itself, resume_options):
                resume_run(deps, action_id)
        except TimeLimitExceeded:
            stop_resumed_run(deps, action_id, time_limit_reason(time_limit_seconds))

    dramatiq.Actor(
        resume,
        broker=broker,
        actor_name=RESUME_RUN,
        queue_name=AGENT_QUEUE,
        priority=0,
        options=resume_options,
    )

    def resume_failed(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        stop_resumed_run(deps, message["args"][0], FAILED_REASON)

    dramatiq.Actor(
        resume_failed,
        broker=broker,
        actor_name=RESUME_FAILED,
        queue_name=AGENT_QUEUE,
        priority=0,
        options=APOLOGY_OPTIONS,
    )

    def digest(digest_id: int, due_micros: int) -> None:
        with (
            job_deadline(DIGEST_OPTIONS["time_limit"] / 1000),
            retry_when(passes_by_itself, DIGEST_OPTIONS),
            deps.pool.connection() as conn,
        ):
            send_digest(conn, deps, digest_id, due_micros)

    dramatiq.Actor(
        digest,
        broker=broker,
        actor_name=SEND_DIGEST,
        queue_name=AGENT_QUEUE,
        priority=10,  # behind people's questions
        options=DIGEST_OPTIONS,
    )

    def resume_later(action_id: int) -> None:
        # The decision's request id follows it to the resumed run.
        enqueue_resume(broker, action_id, current_correlation_id())

    def review_event(request_id: int) -> None:
        with deps.pool.connection() as conn:

            def execute_now(action_id: int) -> None:
                # An approval runs its action in the same job, saving a queue hop and a
                # reload (bench/approvals.py); anything that stops it here (a transient
                # error, another worker holding it) goes to the execution job, whose
                # retries and reconciliation still make it run exactly once.
                try:
                    execute_action(
                        conn,
                        deps.slack_client,
                        deps.tools,
                        deps.guardrails,
                        action_id,
                        resume=resume_later,
                    )
                except Exception:
                    log.warning("action.execution_queued", action_id=action_id, exc_info=True)
                    execute_later(action_id)

            handle_review_request(
                conn,
                deps.slack_client,
                execute_now,
                request_id,
                # Emails released from a flood digest go to be drafted, one card each.
                enqueue_request=lambda released: enqueue_request(
                    broker, released, "email", current_correlation_id()
                ),
                flood=deps.email_flood,
                enqueue_resume=resume_later,
                metrics=deps.metrics,
                mask=lambda text: deps.guardrails.redactor.redact(text).text,
            )

    def execute(action_id: int) -> None:
        with deps.pool.connection() as conn:
            execute_action(
                conn, deps.slack_client, deps.tools, deps.guardrails, action_id, resume=resume_later
            )

    def sweep_actions() -> None:
        # Sent by listeners of earlier releases; the workers' scheduler sweeps now.
        with deps.pool.connection() as conn:
            sweep(conn, deps.slack_client, execute_later)

    def execute_later(action_id: int) -> None:
        # The approval's request id follows it to the execution job.
        enqueue_execution(broker, action_id, current_correlation_id())

    for name, fn in (
        (REVIEW_EVENT, review_event),
        (EXECUTE_ACTION, execute),
        (SWEEP_ACTIONS, sweep_actions),
    ):
        dramatiq.Actor(
            fn,
            broker=broker,
            actor_name=name,
            queue_name=REVIEW_QUEUE,
            priority=0,
            options=REVIEW_OPTIONS,
        )
    dramatiq.Actor(
        failed,
        broker=broker,
        actor_name=REQUEST_FAILED,
        queue_name=AGENT_QUEUE,
        priority=0,
        options=APOLOGY_OPTIONS,
    )


def _send_apology(broker: dramatiq.Broker, request_id: int, reason: str) -> None:
    """Queue the apology job for a run that will not be retried, with the job's request
    id and trace, as the Retries middleware would queue it when retries run out."""
    options: dict[str, Any] = {}
    correlation_id = current_correlation_id()
    if correlation_id:
        options[MESSAGE_OPTION] = correlation_id
    carrier = current_trace_carrier()
    if carrier:
        options[TRACE_OPTION] = carrier
    broker.enqueue(
        dramatiq.Message(
            queue_name=AGENT_QUEUE,
            actor_name=REQUEST_FAILED,
            args=({"args": [request_id]}, {"reason": reason}),
            kwargs={},
            options=options,
        )
    )


def run_worker(settings: Settings) -> None:
    broker = build_broker(settings)
    metrics = Metrics.create()
    tracing = build_tracing(settings, "chatops-worker")
    broker.add_middleware(JobObservability(metrics, tracing.tracer))
    broker.add_middleware(CurrentMessage())  # how many tries a job had (bot/queue/retrying.py)
    # One embedder per process, shared by searches and ingestion jobs.
    embedder = embedder_from_settings(settings, torch_threads=1)
    # Loaded in the background once the worker is ready (seconds: presidio imports spaCy,
    # transformers and torch); until then a job that screens text waits for it.
    detector = pii_detector()
    # The MCP servers' sessions live as long as the worker (one bridge per process).
    mcp = load_mcp_tools(settings)
    deps = build_worker_deps(settings, embedder, metrics, tracing, mcp.tools, detector)
    start_jobs_after(broker, detector)
    with deps.pool.connection() as conn:
        seal_plaintext_tokens(conn)  # installations written before tokens were sealed
    declare_actors(broker, deps, time_limit_seconds=settings.agent_time_limit_seconds)
    declare_ingest_actors(broker, ingest_deps_from_settings(settings, deps.pool, embedder))
    scheduler = Scheduler(
        deps.pool,
        periodic_tasks(
            settings,
            deps,
            broker,
            lambda action_id: enqueue_execution(broker, action_id, None),
        ),
        max_sleep=settings.scheduler_tick_seconds,
    )
    worker = dramatiq.Worker(
        broker,
        queues=consumed_queues(broker, (AGENT_QUEUE, REVIEW_QUEUE, KNOWLEDGE_QUEUE)),
        worker_threads=settings.worker_threads,
        # How long an idle consumer waits for a message before polling again. Dramatiq's
        # default (1 s) added up to a second to the first mention after a quiet spell:
        # bench/slack_intake.py measured idle mention-to-draft p95 705 ms, 112 ms with 100.
        worker_timeout=100,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Each worker process serves its own registry: nothing is shared between processes.
    metrics_server = None
    if settings.metrics_enabled and settings.worker_metrics_port is not None:
        metrics_server = serve_metrics(
            metrics.registry, settings.metrics_host, settings.worker_metrics_port
        )
    # What `dramatiq`'s own CLI emits once the broker is loaded: middleware that runs for
    # the whole process starts here, among them TimeLimit's watcher, without which no
    # job's time limit would ever be enforced.
    broker.emit_after("process_boot")
    worker.start()
    scheduler.start()
    log.info(
        "worker.started",
        threads=settings.worker_threads,
        namespace=settings.queue_namespace,
        broker=settings.broker,
    )
    warmup = WarmUp(stop, embedder)
    detector.start(warmup.detector_done)
    stop.wait()
    log.info("worker.stopping")
    scheduler.stop()
    worker.stop()
    if metrics_server is not None:
        metrics_server.close()
    tracing.shutdown()
    broker.close()
    mcp.close()
    deps.pool.close()
    if warmup.failed is not None:
        raise StartupError(warmup.failed)


def start_jobs_after(broker: dramatiq.Broker, detector: Warming[PiiDetector]) -> None:
    """Each job starts, and its time limit with it, once `detector` has loaded: a person
    whose question arrives as the worker starts is not told it took too long."""
    broker.add_middleware(AfterWarmUp(detector), before=TimeLimit)


class WarmUp:
    """After the worker has started: the detector loads, then the embedder. Without the
    detector the worker can screen nothing, so it stops; jobs that were waiting for it
    fail and are retried by a worker that has one. Without the local embedder, searches
    fail as they would have on first use, and the rest goes on."""

    def __init__(self, stop: threading.Event, embedder: Embedder) -> None:
        self.stop = stop
        self.embedder = embedder
        self.failed: str | None = None

    def detector_done(self, detector: Warming[PiiDetector]) -> None:
        if detector.failure is not None:
            self.failed = f"{detector.what} could not be loaded: {detector.failure}"
            log.error("worker.warmup_failed", what=detector.what, error=str(detector.failure))
            self.stop.set()
            return
        self._loaded(detector)
        if isinstance(self.embedder, LoadedOnFirstUse):
            self.embedder.warm(self._embedder_done)

    def _embedder_done(self, embedder: Warming[Embedder]) -> None:
        if embedder.failure is not None:
            log.error("worker.warmup_failed", what=embedder.what, error=str(embedder.failure))
        else:
            self._loaded(embedder)

    @staticmethod
    def _loaded(warming: Warming[Any]) -> None:
        log.info("worker.warm", what=warming.what, seconds=round(warming.seconds or 0.0, 2))
