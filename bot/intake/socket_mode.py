"""`chatops serve --socket-mode`: Slack delivers over a websocket, for people with no
public URL. The same Bolt app, so the same checks and the same record-then-ack path."""

from __future__ import annotations

import asyncio
import threading
import time

import structlog
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import (
    run_async_bolt_app,
    send_async_response,
)
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.intake.http_server import register_single_workspace
from bot.intake.record import STORE_TIMEOUT
from bot.intake.request_metrics import count_acked, count_received, slack_request_type
from bot.intake.request_queuer import RequestQueuer
from bot.intake.slack_app import build_slack_app
from bot.observability.exposition import serve_metrics
from bot.queue.jobs import enqueue_request
from core.broker import build_broker
from core.db import open_async_pool
from core.metrics import Metrics
from core.settings import Settings
from guardrails.at_rest import AtRest

log = structlog.get_logger(__name__)

DRAIN_TIMEOUT = 5.0  # seconds to finish queueing at shutdown


def run_socket_mode(settings: Settings) -> None:
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    if settings.slack_app_token is None:
        raise SystemExit("chatops: SLACK_APP_TOKEN (xapp-...) is required for --socket-mode")
    pool = await open_async_pool(
        settings.database_url, max_size=settings.database_pool_size, timeout=STORE_TIMEOUT
    )
    broker = build_broker(settings)
    metrics_server = None
    queuer = None
    try:
        if settings.slack_bot_token is not None:
            await register_single_workspace(settings, pool)
        queuer = RequestQueuer(
            pool,
            lambda request_id, kind, correlation_id: enqueue_request(
                broker, request_id, kind, correlation_id
            ),
            timeout=DRAIN_TIMEOUT,
        )
        queuer.start()
        at_rest = AtRest(policy_seconds=settings.guardrails_policy_cache_seconds)
        metrics = None
        if settings.metrics_enabled:
            # No HTTP listener in this mode: /metrics is served on PORT instead.
            metrics = Metrics.create()
            metrics_server = serve_metrics(metrics.registry, settings.metrics_host, settings.port)
        app = build_slack_app(settings, pool, queuer, at_rest, metrics)
        # As the HTTP listener does: the PII detector loads in the background, not on the
        # first event that needs masking (bot/intake/http_server.py).
        threading.Thread(target=at_rest.masker.warm, name="warm-pii", daemon=True).start()
        handler = CountingSocketModeHandler(
            app, settings.slack_app_token.get_secret_value(), metrics=metrics
        )
        log.info("serve.socket_mode")
        await handler.start_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
    finally:
        if queuer is not None:
            await queuer.close(DRAIN_TIMEOUT)
        if metrics_server is not None:
            metrics_server.close()
        broker.close()
        await pool.close()


class CountingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, counting and timing each request's ack the way the
    HTTP listener does (Bolt's global middleware runs before the listeners and never
    sees the response, so the count wraps the handler instead)."""

    def __init__(self, app: AsyncApp, app_token: str, *, metrics: Metrics | None) -> None:
        super().__init__(app, app_token)
        self.metrics = metrics

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # narrowed as in Bolt
        if self.metrics is None:
            await super().handle(client, req)
            return
        started_at = time.time()  # Bolt's own clock for its "slow ack" warning
        request_type = slack_request_type(req.payload)
        received_at = count_received(self.metrics, request_type)
        response = await run_async_bolt_app(self.app, req)
        await send_async_response(client, req, response, started_at)
        count_acked(self.metrics, request_type, response.status, received_at)
