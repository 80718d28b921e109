"""The baseline: a bare Bolt app whose only listener acks, served as `chatops serve` is.

Same Bolt, same aiohttp adapter, same `process_before_response=True` and signature check
as our listener; authorisation is a fixed answer instead of a Postgres lookup, and the
listener records nothing. The gap between the two is the cost of our own intake work.

    python -m bench.bare_bolt --port 3100 --bot-user-id U0SANDBOT --bot-id B0SANDBOT
    (signing secret in BARE_BOLT_SIGNING_SECRET)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult

SECRET_ENV = "BARE_BOLT_SIGNING_SECRET"  # noqa: S105 - a variable name, not a secret
FAKE_BOT_TOKEN = "xoxb-bench-not-a-real-token"  # noqa: S105 - never sent anywhere
BOLT: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)


def build_bolt(signing_secret: str, bot_user_id: str, bot_id: str) -> AsyncApp:
    async def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None, **_: Any
    ) -> AuthorizeResult:
        # Bot ids as our listener's authorize returns them, so Bolt's self-event filter
        # does the same comparison in both apps.
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=FAKE_BOT_TOKEN,
            bot_id=bot_id,
            bot_user_id=bot_user_id,
            user_id=user_id,
        )

    app = AsyncApp(
        signing_secret=signing_secret,
        authorize=authorize,
        process_before_response=True,
        request_verification_enabled=True,
    )

    @app.event("app_mention")
    async def on_mention(ack: AsyncAck) -> None:
        await ack()

    return app


def build_http_app(bolt: AsyncApp) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[BOLT] = bolt
    app.router.add_post("/slack/events", _slack_events)
    app.router.add_get("/healthz", _healthz)
    return app


async def _slack_events(request: web.Request) -> web.Response:
    # The same two adapter calls as bot.intake.http_server._slack_events.
    response = await request.app[BOLT].async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(response)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bot-user-id", required=True)
    parser.add_argument("--bot-id", required=True)
    args = parser.parse_args()
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        print(f"bare_bolt: set {SECRET_ENV}", file=sys.stderr)
        return 2
    # Warnings only, to stdout, as `chatops serve` configures the standard library.
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING)
    bolt = build_bolt(secret, args.bot_user_id, args.bot_id)
    web.run_app(build_http_app(bolt), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
