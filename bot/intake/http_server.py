"""`chatops serve`: the HTTP listener where Slack's requests enter.

Routes: `/slack/events` (events, interactivity and slash commands, all through Bolt),
`/slack/install` and `/slack/oauth_redirect` (multi-workspace installs), `/healthz`
(the process is alive), `/readyz` (Postgres and Redis answer) and `/metrics` (Prometheus;
route only `/slack/*` to this process from the internet).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from opentelemetry.trace import SpanKind
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.intake.installations import record_installation
from bot.intake.record import STORE_TIMEOUT
from bot.intake.request_guard import RequestGuard
from bot.intake.request_metrics import count_acked, count_received, slack_request_type
from bot.intake.request_queuer import RequestQueuer
from bot.intake.slack_app import build_slack_app
from bot.observability.exposition import metrics_response
from bot.observability.stored_state import StoredStateCollector, read_database, read_queues
from bot.observability.tracing import Tracing, build_tracing
from bot.queue.jobs import enqueue_request
from core.broker import build_broker
from core.correlation import LOG_KEY, new_correlation_id
from core.db import AsyncPool, is_unavailable, open_async_pool
from core.errors import StartupError
from core.metrics import Metrics
from core.queues import AGENT_QUEUE, KNOWLEDGE_QUEUE, REVIEW_QUEUE
from core.settings import Settings
from guardrails.at_rest import AtRest

log = structlog.get_logger(__name__)

DRAIN_TIMEOUT = 5.0  # seconds to finish queueing at shutdown
READY_TIMEOUT = 2.0  # seconds /readyz waits for each dependency

POOL: web.AppKey[AsyncPool] = web.AppKey("pool")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
BOLT: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)
GUARD: web.AppKey[RequestGuard] = web.AppKey("guard", RequestGuard)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
TRACING: web.AppKey[Tracing] = web.AppKey("tracing", Tracing)
STORED_STATE: web.AppKey[StoredStateCollector] = web.AppKey("stored_state", StoredStateCollector)

QUEUES = (AGENT_QUEUE, REVIEW_QUEUE, KNOWLEDGE_QUEUE)


def build_http_app(
    settings: Settings, metrics: Metrics | None = None, tracing: Tracing | None = None
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)  # Slack's payloads are far smaller
    app[SETTINGS] = settings
    app[METRICS] = metrics if metrics is not None else Metrics.create()
    app[TRACING] = tracing if tracing is not None else build_tracing(settings, "chatops-serve")
    app[STORED_STATE] = StoredStateCollector()
    app[METRICS].registry.register(app[STORED_STATE])
    app.cleanup_ctx.append(_lifecycle(settings))
    app.router.add_post("/slack/events", _slack_events)
    app.router.add_get("/slack/install", _slack_install)
    app.router.add_get("/slack/oauth_redirect", _slack_oauth_redirect)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


def _lifecycle(
    settings: Settings,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pool = await open_async_pool(
            settings.database_url, max_size=settings.database_pool_size, timeout=STORE_TIMEOUT
        )
        broker = build_broker(settings)

        def enqueue(request_id: int, kind: str, correlation_id: str | None) -> None:
            enqueue_request(broker, request_id, kind, correlation_id)

        if settings.slack_bot_token is not None:
            await register_single_workspace(settings, pool)
        queuer = RequestQueuer(pool, enqueue, timeout=READY_TIMEOUT)
        queuer.start()
        app[POOL] = pool
        app[REDIS] = aioredis.from_url(settings.redis_url)
        # Periodic work (requests stored while Redis was down, approvals' upkeep) is the
        # workers' (bot/queue/periodic.py), so it runs whichever listeners are deployed.
        at_rest = AtRest(policy_seconds=settings.guardrails_policy_cache_seconds)
        app[BOLT] = build_slack_app(settings, pool, queuer, at_rest, app[METRICS])
        app[GUARD] = RequestGuard(
            settings.slack_signing_secret.get_secret_value(),
            pool,
            body_timeout=settings.http_body_timeout_seconds,
        )
        log.info("serve.ready")
        # A request whose text may hold a card number or a key is masked before it is
        # stored; loading the detector takes seconds, longer than Slack waits for an ack,
        # so it is loaded now, in the background, rather than by the first such request.
        # A daemon thread: stopping the listener never waits for it.
        threading.Thread(target=at_rest.masker.warm, name="warm-pii", daemon=True).start()
        try:
            yield
        finally:
            await queuer.close(DRAIN_TIMEOUT)
            app[TRACING].shutdown()
            await app[REDIS].aclose()
            broker.close()
            await pool.close()

    return lifecycle


async def register_single_workspace(settings: Settings, pool: AsyncPool) -> int:
    """Single-workspace mode: the workspace of SLACK_BOT_TOKEN becomes (or stays) a tenant."""
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url)
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        raise StartupError(
            f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}): check the token"
        ) from None
    except aiohttp.ClientError as exc:
        raise StartupError(f"cannot reach Slack at SLACK_API_URL: {exc}") from None
    installation = Installation(
        app_id=auth.get("app_id"),
        enterprise_id=auth.get("enterprise_id"),
        team_id=auth["team_id"],
        team_name=auth.get("team"),
        bot_token=token,
        bot_id=auth["bot_id"],
        bot_user_id=auth["user_id"],
        user_id=auth["user_id"],
    )
    tenant_id = await record_installation(pool, installation, team_name=auth.get("team"))
    log.info("slack.single_workspace", team_id=auth["team_id"], tenant_id=tenant_id)
    return tenant_id


async def _slack_events(request: web.Request) -> web.Response:
    """Dispatch to Bolt under a new correlation id, counting and timing the ack.

    The body is read, its signature verified and a command checked against replays
    (bot/intake/request_guard.py) before anything parses it."""
    started = time.monotonic()
    metrics = request.app[METRICS] if request.app[SETTINGS].metrics_enabled else None
    try:
        checked = await request.app[GUARD].check(request)
    except Exception as exc:
        # The replay record is in Postgres: unreachable, nothing can be stored either.
        if not is_unavailable(exc):
            raise
        log.warning("slack.storage_unavailable", error=type(exc).__name__)
        return web.Response(status=503, text="storage unavailable, retry later")
    if checked.refused is not None:
        log.warning("slack.request_refused", reason=checked.refused, size=len(checked.body))
        refusal = checked.response()
        if metrics is not None:
            count_received(metrics, "other")
            count_acked(metrics, "other", refusal.status, started)
        return refusal
    try:
        bolt_request = await to_bolt_request(request)
    except ValueError:  # signed, yet not text: not something Slack sends
        log.warning("slack.request_unreadable", size=len(checked.body))
        return web.Response(status=400, text="request body is not readable")
    request_type = slack_request_type(bolt_request.body)
    if metrics is not None:
        count_received(metrics, request_type)
    correlation_id = new_correlation_id()
    # The listener stores it with the request (bot/intake/slack_app.py reads it here).
    bolt_request.context[LOG_KEY] = correlation_id
    span = request.app[TRACING].tracer.start_as_current_span(
        "slack.request",
        kind=SpanKind.SERVER,
        attributes={"slack.request_type": request_type, LOG_KEY: correlation_id},
    )
    # The span is current while Bolt runs the listener, so the job it queues carries it.
    with span, structlog.contextvars.bound_contextvars(**{LOG_KEY: correlation_id}):
        response = await to_aiohttp_response(await request.app[BOLT].async_dispatch(bolt_request))
    if metrics is not None:
        # Timed from the request's arrival, before it was parsed.
        count_acked(metrics, request_type, response.status, started)
    return response


async def _slack_install(request: web.Request) -> web.Response:
    flow = request.app[BOLT].oauth_flow
    if flow is None:
        raise web.HTTPNotFound(text="multi-workspace install is off: set SLACK_CLIENT_ID")
    return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))


async def _slack_oauth_redirect(request: web.Request) -> web.Response:
    flow = request.app[BOLT].oauth_flow
    if flow is None:
        raise web.HTTPNotFound(text="multi-workspace install is off: set SLACK_CLIENT_ID")
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _metrics(request: web.Request) -> web.Response:
    """Reads the queue and approval state first: it lives in Redis and Postgres, not here."""
    settings, collector = request.app[SETTINGS], request.app[STORED_STATE]
    if not settings.metrics_enabled:
        raise web.HTTPNotFound(text="metrics are disabled (METRICS_ENABLED=false)")
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            state = await read_database(request.app[POOL])
            if settings.broker == "redis":
                queues = await read_queues(request.app[REDIS], settings.queue_namespace, QUEUES)
                state = dataclasses.replace(state, queues=queues)
        collector.state = state
    except Exception:
        # The process's own series are still worth a scrape; the shared state keeps its
        # last reading, and this log line says why it is stale.
        log.exception("metrics.stored_state_failed")
    return metrics_response(request.app[METRICS].registry)


async def _readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with request.app[POOL].connection() as conn:
                await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = type(exc).__name__
    if request.app[SETTINGS].broker == "redis":  # with RabbitMQ, nothing here needs Redis
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await request.app[REDIS].ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = type(exc).__name__
    ready = all(value == "ok" for value in checks.values())
    return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)


def run_http(settings: Settings, port: int) -> None:
    web.run_app(
        build_http_app(settings),
        port=port,
        access_log=None,
        print=None,
        # Also how long a new connection may take to send its request's headers: a client
        # that never finishes them is disconnected then (the body has its own timeout).
        keepalive_timeout=settings.http_idle_timeout_seconds,
    )
