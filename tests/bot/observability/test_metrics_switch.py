"""METRICS_ENABLED=false: the listener still takes every event, but counts and serves nothing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sandbox.slack_events import sign
from tests.support.conversation import GENERAL, REQUESTER
from tests.support.processes import ChatopsProcess
from tests.support.stack import Stack, free_port

DB = psycopg.Connection[dict[str, Any]]


def test_a_listener_with_metrics_off_acks_events_and_has_no_metrics_page(
    stack: Stack, db: DB, tmp_path: Path
) -> None:
    port = free_port()
    listener = ChatopsProcess(
        ["serve", "--port", str(port)],
        stack.env | {"METRICS_ENABLED": "false"},
        tmp_path / "serve.log",
    )
    listener.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        slack = stack.slack
        ts = slack.workspace.next_ts()
        envelope = slack.dispatcher.builder.envelope(
            {
                "type": "app_mention",
                "user": REQUESTER,
                "text": f"<@{slack.bot_user_id}> is anyone counting?",
                "ts": ts,
                "channel": GENERAL,
                "event_ts": ts,
            }
        )
        status = _post_signed(f"http://127.0.0.1:{port}/slack/events", envelope, slack)
        assert status == 200
        stored = db.execute(
            "SELECT kind FROM inbound_requests WHERE external_id = %s", (envelope["event_id"],)
        ).fetchone()
        assert stored == {"kind": "app_mention"}

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert refused.value.code == 404
        assert "METRICS_ENABLED" in refused.value.read().decode()
    finally:
        listener.stop()


def _post_signed(url: str, envelope: dict[str, Any], slack: Any) -> int:
    body = json.dumps(envelope)
    timestamp = int(time.time())
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(slack.signing_secret, timestamp, body),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)
