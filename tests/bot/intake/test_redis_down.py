"""With Redis unreachable, an acknowledged Slack event is still safe in Postgres."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sandbox.slack_emulator import SlackEmulator
from tests.support.conversation import mention
from tests.support.processes import ChatopsProcess
from tests.support.stack import free_port, product_env

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def listener_without_redis(
    database_url: str,
    queue_namespace: str,
    slack: SlackEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = product_env(
        database_url=database_url,
        redis_url=dead_redis,
        namespace=f"{queue_namespace}-noredis",
        slack=slack,
        llm_primary=None,
        llm_fallback=None,
    )
    port = free_port()
    serve = ChatopsProcess(
        ["serve", "--port", str(port)], env, tmp_path_factory.mktemp("noredis") / "serve.log"
    )
    serve.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    previous_url = slack.events_url
    slack.events_url = f"http://127.0.0.1:{port}/slack/events"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        slack.events_url = previous_url
        serve.stop()


def test_event_is_acknowledged_and_kept_while_redis_is_down(
    listener_without_redis: str, slack: SlackEmulator, db: DB
) -> None:
    """Slack gets its 200 only after the row is written; the row waits to be queued later."""
    post = mention(slack, "Is anyone there?")
    assert [d.status for d in post.deliveries] == [200]
    row = db.execute(
        "SELECT status, kind FROM inbound_requests WHERE external_id = %s",
        (post.deliveries[0].event_id,),
    ).fetchone()
    assert row == {"status": "received", "kind": "app_mention"}


def test_readiness_reports_redis_down(listener_without_redis: str) -> None:
    """/readyz answers 503 and names the dependency that is down; /healthz stays 200."""
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(f"{listener_without_redis}/readyz", timeout=5)
    assert failure.value.code == 503
    body = json.loads(failure.value.read())
    assert body["ready"] is False and body["postgres"] == "ok" and body["redis"] != "ok"
    with urllib.request.urlopen(f"{listener_without_redis}/healthz", timeout=5) as ok:
        assert ok.status == 200
