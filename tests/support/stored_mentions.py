"""A Slack mention stored as the listener stores it, for tests that run the request in
their own process instead of through the listener."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.support.conversation import GENERAL, REQUESTER
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]


@dataclass(frozen=True)
class StoredMention:
    request_id: int
    ts: str  # the mention's own message
    tenant_id: int


def store_mention(
    db: DB,
    stack: Stack,
    text: str,
    *,
    channel: str = GENERAL,
    thread_ts: str | None = None,
    tenant_id: int | None = None,
    event_fields: Mapping[str, Any] | None = None,
) -> StoredMention:
    """The requester posts ``text`` in ``channel`` (in the thread ``thread_ts`` if given)
    and it is stored as an app_mention request, 'queued' so the session's sweeper leaves it
    to the test. The request belongs to ``tenant_id``, by default the tenant the sandbox
    workspace installed the app for; ``event_fields`` are added to the Slack event."""
    workspace = stack.slack.workspace
    message = workspace.post_message(channel, user=REQUESTER, text=text, thread_ts=thread_ts)
    if tenant_id is None:
        tenant = db.execute(
            "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
            (workspace.team.id,),
        ).fetchone()
        assert tenant is not None
        tenant_id = int(tenant["tenant_id"])
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": REQUESTER,
        "text": text,
        "ts": message.ts,
        "channel": channel,
        "event_ts": message.ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(event_fields or {})
    envelope = stack.slack.dispatcher.builder.envelope(event)
    row = db.execute(
        """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload, status)
           VALUES (%s, 'slack', %s, 'app_mention', %s, 'queued') RETURNING id""",
        (tenant_id, envelope["event_id"], Jsonb(envelope)),
    ).fetchone()
    assert row is not None
    return StoredMention(int(row["id"]), message.ts, tenant_id)
