"""Inbound requests: storing them and every change of their status, through the
transitions written down here once.

A listener stores a request 'received' and hands it to the broker ('queued'); a worker
takes it ('running': Slack questions only; emails, panel events and review clicks are
handled while still 'queued') and it ends 'done', 'failed' or 'ignored' (the asker may
not ask there, the assistant is paused, an email was held...). Two ways lead back to
'queued': the sweep of stranded requests (bot/queue/stranded.py), which takes open ones
only, and an approver releasing held emails from their digest
(connectors/email/flood_gate.py), which reopens finished ones that were held.

A change a request's status does not allow is refused: the call changes nothing and
returns False, so a request answered is never queued again and a finished one keeps
its outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from psycopg import AsyncConnection, Connection
from psycopg.types.json import Jsonb

Status = Literal["received", "queued", "running", "done", "failed", "ignored"]

OPEN: Final[frozenset[Status]] = frozenset({"received", "queued", "running"})
FINISHED: Final[frozenset[Status]] = frozenset({"done", "failed", "ignored"})

# Each status and the statuses a request may move to from it.
TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    "received": frozenset({"queued", "running", *FINISHED}),
    # 'queued' to 'queued': a stranded request queued again; 'running' likewise, after
    # the job that ran it vanished.
    "queued": frozenset({"queued", "running", *FINISHED}),
    "running": frozenset({"queued", "running", *FINISHED}),
    # A permanent Slack refusal after the answer was stored (running what a rule
    # allowed) records the request failed, where an admin sees it.
    "done": frozenset({"failed"}),
    # A held email's request, released by an approver from the inbox's digest: held
    # ('ignored'), or failed when its digest card could not be posted in time.
    "failed": frozenset({"queued"}),
    "ignored": frozenset({"queued"}),
}


def may_become(target: Status) -> list[Status]:
    """The statuses a request may move to ``target`` from (a list, as SQL's ANY wants)."""
    return sorted(status for status, targets in TRANSITIONS.items() if target in targets)


def is_finished(status: str) -> bool:
    """Whether a request with this status has its outcome: nothing runs it again."""
    return status in FINISHED


INSERT = """
    INSERT INTO inbound_requests
      (tenant_id, source, external_id, kind, payload, retry_count, correlation_id)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id
"""


@dataclass(frozen=True)
class NewRequest:
    """What a listener stores of a request it received."""

    tenant_id: int
    source: str  # 'slack', 'email'
    external_id: str  # the source's own id: a retry of one delivery is stored once
    kind: str
    payload: Mapping[str, Any]
    retry_count: int = 0
    correlation_id: str | None = None

    def params(self) -> tuple[Any, ...]:
        return (
            self.tenant_id,
            self.source,
            self.external_id,
            self.kind,
            Jsonb(self.payload),
            self.retry_count,
            self.correlation_id,
        )


def add(conn: Connection[dict[str, Any]], request: NewRequest) -> int | None:
    """Store a request 'received'; its id, or None when its source already gave us this
    external id (a retry)."""
    row = conn.execute(INSERT, request.params()).fetchone()
    return None if row is None else int(row["id"])


async def add_async(conn: AsyncConnection[dict[str, Any]], request: NewRequest) -> int | None:
    """`add`, for the listeners' event loop."""
    row = await (await conn.execute(INSERT, request.params())).fetchone()
    return None if row is None else int(row["id"])


# The email listener stores a request with the raw message, before it answers 250, in
# one statement (connectors/email/inbound_store.py) that composes this CTE, read as
# `request` after it. The payload says only that the message arrived: the worker reads
# the message first (EMAIL_READ_CTE), then answers it.
EMAIL_ARRIVAL_CTE = """request AS (
    INSERT INTO inbound_requests
        (tenant_id, source, external_id, kind, payload, status, correlation_id)
    VALUES (%(tenant_id)s, 'email', %(message_id)s, 'email', %(payload)s, 'received',
            %(correlation_id)s)
    ON CONFLICT (tenant_id, source, external_id) DO NOTHING
    RETURNING id
)"""

# The worker's reading of an arrived email, composed the same way: it reads the
# `conversation` CTE before it. The payload becomes what the message says; a message that
# must not be answered (a loop, an auto-reply: 'ignored') or could not be read ('failed')
# is finished at once, and one to answer keeps its open status.
EMAIL_READ_CTE = """request AS (
    UPDATE inbound_requests
       SET payload = %(payload)s::jsonb || jsonb_build_object('conversation_id', conversation.id),
           status = CASE WHEN %(status)s = 'received' THEN inbound_requests.status
                         ELSE %(status)s END,
           error = %(error)s,
           finished_at = CASE WHEN %(status)s = 'received' THEN NULL ELSE now() END
      FROM conversation
     WHERE inbound_requests.id = %(request_id)s
    RETURNING inbound_requests.id
)"""


# Only what no one queued yet: a request the sweep queued first keeps its queued_at.
QUEUED_BY_LISTENER = """
    UPDATE inbound_requests SET status = 'queued', queued_at = now()
    WHERE id = ANY(%s) AND status = 'received'
"""


async def mark_queued_async(conn: AsyncConnection[dict[str, Any]], ids: Sequence[int]) -> None:
    """The listener handed these stored requests to the broker."""
    await conn.execute(QUEUED_BY_LISTENER, (list(ids),))


STRANDED = """
    SELECT id, kind, status, correlation_id FROM inbound_requests
    WHERE status = ANY(%(open)s)
      AND coalesce(queued_at, received_at) < now() - %(after)s  -- the index's range
      AND coalesce(queued_at, received_at) < now() - CASE WHEN status = 'received'
            THEN %(after)s ELSE %(after_queued)s END
    ORDER BY coalesce(queued_at, received_at)
    LIMIT %(batch)s
"""


def stranded(
    conn: Connection[dict[str, Any]], *, after: timedelta, after_queued: timedelta, batch: int
) -> list[dict[str, Any]]:
    """Open requests last queued (or received) longer ago than ``after`` ('received'
    ones) or ``after_queued`` (the others, never shorter than ``after``), oldest first:
    id, kind, status and correlation_id."""
    return conn.execute(
        STRANDED,
        {"open": sorted(OPEN), "after": after, "after_queued": after_queued, "batch": batch},
    ).fetchall()


REQUEUED = """
    UPDATE inbound_requests SET status = 'queued', queued_at = now(), requeued = requeued + 1
    WHERE id = %s AND status = ANY(%s)
"""


def mark_requeued(conn: Connection[dict[str, Any]], request_id: int) -> bool:
    """The sweep queued this stranded request again; False if it finished meanwhile."""
    return conn.execute(REQUEUED, (request_id, sorted(OPEN))).rowcount == 1


RELEASED = """
    UPDATE inbound_requests
       SET status = 'queued', queued_at = now(), error = NULL, finished_at = NULL
     WHERE id = ANY(%s) AND tenant_id = %s AND status = ANY(%s)
"""


def mark_released(conn: Connection[dict[str, Any]], tenant_id: int, ids: Sequence[int]) -> int:
    """Held emails' requests an approver released: back in the queue's hands, their hold
    forgotten. How many were reopened."""
    return conn.execute(RELEASED, (list(ids), tenant_id, may_become("queued"))).rowcount


RUNNING = """
    UPDATE inbound_requests SET status = 'running'
    WHERE id = %s AND tenant_id = %s AND status = ANY(%s)
"""


def mark_running(conn: Connection[dict[str, Any]], tenant_id: int, request_id: int) -> bool:
    """A worker is answering the request; False if it is finished."""
    return conn.execute(RUNNING, (request_id, tenant_id, may_become("running"))).rowcount == 1


FINISH = """
    UPDATE inbound_requests SET status = %s, error = %s, finished_at = now()
    WHERE id = %s AND status = ANY(%s)
"""
FINISH_IN_TENANT = """
    UPDATE inbound_requests SET status = %s, error = %s, finished_at = now()
    WHERE id = %s AND tenant_id = %s AND status = ANY(%s)
"""


def finish(
    conn: Connection[dict[str, Any]],
    request_id: int,
    status: Literal["done", "failed", "ignored"],
    reason: str | None = None,
    *,
    tenant_id: int | None = None,
) -> bool:
    """The request has its outcome, with why when there is one to give; False if the
    request may not take it (it had one already)."""
    sources = may_become(status)
    if tenant_id is None:
        cursor = conn.execute(FINISH, (status, reason, request_id, sources))
    else:
        cursor = conn.execute(FINISH_IN_TENANT, (status, reason, request_id, tenant_id, sources))
    return cursor.rowcount == 1


FAIL = """
    UPDATE inbound_requests SET status = 'failed', error = %s, finished_at = now()
    WHERE id = %s AND status = ANY(%s)
    RETURNING tenant_id
"""


def fail(conn: Connection[dict[str, Any]], request_id: int, reason: str) -> int | None:
    """The request could not be answered, and why; its tenant, or None when it is
    unknown or may not fail (it failed already, or was ignored)."""
    row = conn.execute(FAIL, (reason, request_id, may_become("failed"))).fetchone()
    return None if row is None else int(row["tenant_id"])


@dataclass(frozen=True)
class Backlog:
    """A workspace's requests as `/agent status` shows them."""

    open: int  # waiting or running
    failed_last_day: int  # received in the last 24 hours and failed


BACKLOG = """SELECT
     count(*) FILTER (WHERE status = ANY(%(open)s)) AS open,
     count(*) FILTER (WHERE status = 'failed' AND received_at > now() - interval '1 day')
       AS failed_last_day
   FROM inbound_requests WHERE tenant_id = %(tenant)s"""


async def backlog_async(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> Backlog:
    """How many of the workspace's requests are open, and how many failed lately."""
    cursor = await conn.execute(BACKLOG, {"open": sorted(OPEN), "tenant": tenant_id})
    row = await cursor.fetchone()
    assert row is not None  # an aggregate returns one row
    return Backlog(open=int(row["open"]), failed_last_day=int(row["failed_last_day"]))


# A request with what the worker answers it with: its workspace's bot token (sealed or
# not; connectors/slack/bot_tokens.py opens it) and the bot's own ids. A request of a
# tenant without a Slack workspace comes with those columns NULL.
WITH_INSTALLATION = """
    SELECT r.*, i.bot_token, i.bot_token_sealed, i.bot_user_id, i.bot_id
    FROM inbound_requests r
    LEFT JOIN slack_installations i ON i.tenant_id = r.tenant_id
    WHERE r.id = %s
"""
# The same for a review event (a click, a release), which only a Slack workspace sends.
IN_INSTALLED_WORKSPACE = """
    SELECT r.*, i.bot_token, i.bot_token_sealed FROM inbound_requests r
    JOIN slack_installations i ON i.tenant_id = r.tenant_id WHERE r.id = %s
"""


def with_installation(conn: Connection[dict[str, Any]], request_id: int) -> dict[str, Any] | None:
    """The request with its workspace's bot token columns and bot ids (NULL when the
    tenant has no Slack workspace); None when there is no such request."""
    return conn.execute(WITH_INSTALLATION, (request_id,)).fetchone()


def in_installed_workspace(
    conn: Connection[dict[str, Any]], request_id: int
) -> dict[str, Any] | None:
    """The request with its workspace's bot token columns; None when there is no such
    request or its tenant has no Slack workspace."""
    return conn.execute(IN_INSTALLED_WORKSPACE, (request_id,)).fetchone()


@dataclass(frozen=True)
class DraftTime:
    """How long a request took from received to finished, and how much of it the model
    calls of its runs took."""

    source: str
    seconds: float
    llm_seconds: float


DRAFT_TIME = """
    SELECT r.source,
           extract(epoch FROM r.finished_at - r.received_at)::float8 AS seconds,
           coalesce((SELECT sum(u.latency_ms) FROM llm_usage u
                     JOIN agent_runs a ON a.id = u.run_id
                     WHERE a.request_id = r.id AND u.tenant_id = r.tenant_id), 0)
             ::float8 / 1000 AS llm_seconds
    FROM inbound_requests r
    WHERE r.id = %s AND r.finished_at >= now() - make_interval(secs => %s)
"""


def draft_time(
    conn: Connection[dict[str, Any]], request_id: int, *, finished_within: float
) -> DraftTime | None:
    """The request's draft time, if it finished in the last ``finished_within`` seconds."""
    row = conn.execute(DRAFT_TIME, (request_id, finished_within)).fetchone()
    if row is None:
        return None
    return DraftTime(row["source"], row["seconds"], row["llm_seconds"])
