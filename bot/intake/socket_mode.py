"""`chatops serve --socket-mode`: Slack delivers over a websocket, for people with no
public URL. The same Bolt app, so the same checks and the same record-then-ack path."""

from __future__ import annotations

import asyncio

import structlog
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from bot.db import open_async_pool
from bot.intake.http_server import register_single_workspace
from bot.intake.slack_app import build_slack_app
from bot.queue.broker import build_broker
from bot.queue.jobs import enqueue_request
from bot.settings import Settings

log = structlog.get_logger(__name__)


def run_socket_mode(settings: Settings) -> None:
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    if settings.slack_app_token is None:
        raise SystemExit("chatops: SLACK_APP_TOKEN (xapp-...) is required for --socket-mode")
    pool = await open_async_pool(settings.database_url, max_size=settings.database_pool_size)
    broker = build_broker(settings)
    try:
        if settings.slack_bot_token is not None:
            await register_single_workspace(settings, pool)
        app = build_slack_app(
            settings,
            pool,
            lambda request_id, kind, correlation_id: enqueue_request(
                broker, request_id, kind, correlation_id
            ),
        )
        handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
        log.info("serve.socket_mode")
        await handler.start_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
    finally:
        broker.close()
        await pool.close()
