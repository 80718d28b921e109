"""Over Socket Mode no HTTP server sees Slack's requests: the handler counts them.

`chatops serve --socket-mode`'s handler and the product's Bolt app are given requests as
Slack's websocket delivers them (an envelope per request, answered by envelope id),
against the session's real Postgres. The websocket itself is the one part left out: its
client here only records what the handler sends back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.intake.request_queuer import RequestQueuer
from bot.intake.slack_app import build_slack_app
from bot.intake.socket_mode import CountingSocketModeHandler
from core.db import open_async_pool
from core.metrics import Metrics
from core.settings import load_settings
from tests.support.conversation import GENERAL, REQUESTER
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]


class RecordingSocket:
    """The websocket's sending side: which envelopes were acknowledged."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.logger = logging.getLogger("recording-socket")

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.acked.append(response.envelope_id)


def test_socket_mode_requests_are_counted_and_timed_by_type(
    stack: Stack, db: DB, database_url: str
) -> None:
    slack = stack.slack
    mention = slack.dispatcher.builder.envelope(
        {
            "type": "app_mention",
            "user": REQUESTER,
            "text": f"<@{slack.bot_user_id}> counted over the websocket?",
            "ts": slack.workspace.next_ts(),
            "channel": GENERAL,
        }
    )
    forged = slack.dispatcher.builder.envelope({"type": "made_up_event", "channel": GENERAL})
    metrics = Metrics.create()
    queued: list[int] = []
    socket = RecordingSocket()

    async def deliver_all() -> None:
        settings = load_settings(
            database_url=database_url, slack_signing_secret=slack.signing_secret
        )
        pool = await open_async_pool(database_url, max_size=2)
        queuer = RequestQueuer(pool, lambda request_id, *_: queued.append(request_id), timeout=5)
        queuer.start()
        try:
            app = build_slack_app(settings, pool, queuer)
            handler = CountingSocketModeHandler(app, "xapp-1-test", metrics=metrics)
            for number, body in enumerate((mention, forged)):
                request = SocketModeRequest(
                    type="events_api", envelope_id=f"envelope-{number}", payload=body
                )
                await handler.handle(socket, request)  # type: ignore[arg-type]
        finally:
            await queuer.close(5)  # what was acknowledged is queued before the pool closes
            await pool.close()

    asyncio.run(deliver_all())

    # The mention was acknowledged by its envelope id; the unknown event was not (Bolt
    # answered 404, and Slack redelivers what is not acknowledged).
    assert socket.acked == ["envelope-0"]

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("chatops_slack_events_received_total", type="app_mention") == 1
    assert value("chatops_slack_events_acked_total", type="app_mention", status="200") == 1
    assert value("chatops_slack_ack_seconds_count", type="app_mention") == 1
    # An event type we do not know is counted under "other", whatever its name.
    assert value("chatops_slack_events_received_total", type="other") == 1
    assert value("chatops_slack_events_acked_total", type="other", status="404") == 1
    # And the mention was stored before its ack, like any other.
    stored = db.execute(
        "SELECT id FROM inbound_requests WHERE external_id = %s", (mention["event_id"],)
    ).fetchone()
    assert stored is not None and queued == [stored["id"]]
