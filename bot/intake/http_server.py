"""`chatops serve`: the HTTP listener where Slack's requests enter.

Routes: `/slack/events` (events, interactivity and slash commands, all through Bolt),
`/slack/install` and `/slack/oauth_redirect` (multi-workspace installs), `/healthz`
(the process is alive) and `/readyz` (Postgres and Redis answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.db import AsyncPool, open_async_pool
from bot.errors import StartupError
from bot.intake.installations import record_installation
from bot.intake.record import requeue_stranded
from bot.intake.slack_app import build_slack_app
from bot.queue.broker import build_broker
from bot.queue.jobs import enqueue_request, enqueue_sweep
from bot.settings import Settings

log = structlog.get_logger(__name__)

REQUEUE_INTERVAL = 15.0  # seconds between sweeps for requests stored but never queued
READY_TIMEOUT = 2.0  # seconds /readyz waits for each dependency

POOL: web.AppKey[AsyncPool] = web.AppKey("pool")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
BOLT: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)


def build_http_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)  # Slack's payloads are far smaller
    app.cleanup_ctx.append(_lifecycle(settings))
    app.router.add_post("/slack/events", _slack_events)
    app.router.add_get("/slack/install", _slack_install)
    app.router.add_get("/slack/oauth_redirect", _slack_oauth_redirect)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


def _lifecycle(
    settings: Settings,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pool = await open_async_pool(settings.database_url, max_size=settings.database_pool_size)
        broker = build_broker(settings)

        def enqueue(request_id: int, kind: str) -> None:
            enqueue_request(broker, request_id, kind)

        if settings.slack_bot_token is not None:
            await register_single_workspace(settings, pool)
        app[POOL] = pool
        app[REDIS] = aioredis.from_url(settings.redis_url)
        app[BOLT] = build_slack_app(settings, pool, enqueue)
        sweeper = asyncio.create_task(_sweep_forever(pool, enqueue, lambda: enqueue_sweep(broker)))
        log.info("serve.ready")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
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


async def _sweep_forever(
    pool: AsyncPool, enqueue: Callable[[int, str], None], sweep_actions: Callable[[], None]
) -> None:
    """Every few seconds: re-queue stranded requests, and ask a worker to tend the
    pending actions (relay approvals, reminders, expiry)."""
    while True:
        await asyncio.sleep(REQUEUE_INTERVAL)
        try:
            await requeue_stranded(pool, enqueue)
            await asyncio.to_thread(sweep_actions)
        except Exception:
            log.exception("sweep.failed")


async def _slack_events(request: web.Request) -> web.Response:
    bolt = request.app[BOLT]
    response = await bolt.async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(response)


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


async def _readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with request.app[POOL].connection() as conn:
                await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = type(exc).__name__
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = type(exc).__name__
    ready = all(value == "ok" for value in checks.values())
    return web.json_response({"ready": ready, **checks}, status=200 if ready else 503)


def run_http(settings: Settings, port: int) -> None:
    web.run_app(build_http_app(settings), port=port, access_log=None, print=None)
