"""Periodic upkeep of pending actions: relay, lost executions, reminders, escalation,
expiry.

Run by the workers' scheduler (bot/queue/periodic.py). Any number of sweeps may run at
once: every change is a guarded transition or a conditional update, and an execution
queued twice runs once (it claims the action under a lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from slack_sdk import WebClient

from connectors.slack.bot_tokens import TokenUnreadable, bot_token_of
from review import actions, escalation, resumes, tenant_settings
from review.execute import LOCK_NAMESPACE
from review.messages import people_summary
from review.slack_posts import (
    note_in_approval_thread,
    post_approval_request,
    refresh_approval_message,
    show_prompts,
    tell_requester,
)

log = structlog.get_logger(__name__)

BATCH = 200  # actions handled per kind and sweep

OPEN_ACTIONS = """
    SELECT a.*, i.bot_token, i.bot_token_sealed FROM pending_actions a
    JOIN slack_installations i ON i.tenant_id = a.tenant_id
    LEFT JOIN tenant_settings s ON s.tenant_id = a.tenant_id
"""


# Approved or executing actions whose execution job is gone (Redis lost, a worker killed
# with it): not held by the broker, and no worker holds the action's execution lock.
LOST_EXECUTIONS = (
    OPEN_ACTIONS
    + """WHERE a.status IN ('approved', 'executing') AND a.queued_at IS NOT NULL
           AND a.queued_at < now() - %(after)s
           AND NOT coalesce(s.paused, false)
           AND NOT EXISTS (
             SELECT 1 FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = ((%(namespace)s::bigint << 47) | a.id) >> 32
               AND l.objid::bigint = ((%(namespace)s::bigint << 47) | a.id) & 4294967295)
         ORDER BY a.id LIMIT %(batch)s"""
)


@dataclass(frozen=True)
class LostJobs:
    """How to tell an execution whose job is gone from one waiting in the queue."""

    after: timedelta  # how long an approved action may wait for its execution job
    # The actions with an execution job in the broker, read only when some action may
    # have lost its job; None: the broker cannot say.
    queued: Callable[[], frozenset[int] | None]


@dataclass(frozen=True)
class SweepReport:
    relayed: int
    announced: int
    reminded: int
    expired: int
    requeued: int = 0
    escalated: int = 0
    resumed: int = 0  # resume jobs of decided actions sent (review/resumes.py)


def sweep(
    conn: actions.Conn,
    client_for: Callable[[str], WebClient],
    enqueue_execution: Callable[[int], None],
    now: datetime | None = None,
    *,
    lost: LostJobs | None = None,
    enqueue_resume: resumes.Send | None = None,
) -> SweepReport:
    if now is None:
        row = conn.execute("SELECT now() AS now").fetchone()
        assert row is not None
        now = row["now"]
    report = SweepReport(
        requeued=0 if lost is None else _requeue_lost(conn, enqueue_execution, lost),
        relayed=_relay_approved(conn, enqueue_execution),
        announced=_announce_unposted(conn, client_for),
        reminded=_remind(conn, client_for, now),
        escalated=_escalate(conn, client_for, now),
        expired=_expire(conn, client_for, now),
        resumed=0 if enqueue_resume is None else resumes.relay_unsent(conn, enqueue_resume),
    )
    if any(vars(report).values()):
        log.info("review.swept", **vars(report))
    return report


def _relay_approved(conn: actions.Conn, enqueue: Callable[[int], None]) -> int:
    """Approved actions whose execution job was never sent (or was held while paused)."""
    rows = conn.execute(
        OPEN_ACTIONS
        + """WHERE a.status = 'approved' AND a.queued_at IS NULL
               AND NOT coalesce(s.paused, false)
             ORDER BY a.id LIMIT %s""",
        (BATCH,),
    ).fetchall()
    for row in rows:
        enqueue(row["id"])
        actions.set_fields(conn, row, queued_at=actions.NOW)
    return len(rows)


def _requeue_lost(conn: actions.Conn, enqueue: Callable[[int], None], lost: LostJobs) -> int:
    """Executions whose job was lost: queued again. An action that was 'executing' asks
    its tool whether it already took effect before acting (review/execute.py)."""
    rows = conn.execute(
        LOST_EXECUTIONS, {"after": lost.after, "namespace": LOCK_NAMESPACE, "batch": BATCH}
    ).fetchall()
    if not rows:
        return 0
    queued = lost.queued()
    if queued is None:
        return 0  # the broker cannot say (RabbitMQ, which does not lose acknowledged jobs)
    requeued = 0
    for row in rows:
        if row["id"] in queued:
            continue  # waiting its turn
        enqueue(row["id"])
        actions.set_fields(conn, row, queued_at=actions.NOW)
        log.warning("action.requeued", action_id=row["id"], was=row["status"])
        requeued += 1
    return requeued


def _announce_unposted(conn: actions.Conn, client_for: Callable[[str], WebClient]) -> int:
    """Pending actions proposed before the tenant had an approval channel."""
    rows = conn.execute(
        OPEN_ACTIONS
        + """WHERE a.status = 'pending' AND a.approval_ts IS NULL
               AND s.approval_channel_id IS NOT NULL
             ORDER BY a.id LIMIT %s""",
        (BATCH,),
    ).fetchall()
    for row in rows:
        token = _token(row)
        if token is None:
            continue
        settings = tenant_settings.load(conn, row["tenant_id"])
        post_approval_request(conn, client_for(token), settings, row)
    return len(rows)


def _remind(conn: actions.Conn, client_for: Callable[[str], WebClient], now: datetime) -> int:
    rows = conn.execute(
        OPEN_ACTIONS
        + """WHERE a.status = 'pending' AND a.reminded_at IS NULL AND a.approval_ts IS NOT NULL
               AND a.expires_at - coalesce(s.reminder_before, interval '2 hours') <= %s
               AND a.expires_at > %s
             ORDER BY a.id LIMIT %s""",
        (now, now, BATCH),
    ).fetchall()
    for row in rows:
        token = _token(row)
        if token is None:
            continue
        updated = conn.execute(
            "UPDATE pending_actions SET reminded_at = %s WHERE id = %s AND reminded_at IS NULL"
            " RETURNING id",
            (now, row["id"]),
        ).fetchone()
        if updated:
            note_in_approval_thread(
                client_for(token),
                row,
                f":alarm_clock: Reminder: this expires <!date^{int(row['expires_at'].timestamp())}"
                "^{date_short_pretty} at {time}|soon> unless someone decides.",
            )
    return len(rows)


def _escalate(conn: actions.Conn, client_for: Callable[[str], WebClient], now: datetime) -> int:
    """Actions undecided after the tenant's escalation time: shown once to the escalation
    group (a note under the card mentions them, the card says so), who may then decide."""
    rows = conn.execute(
        OPEN_ACTIONS.replace("SELECT a.*,", "SELECT a.*, s.escalate_to AS escalate_to_now,")
        + """WHERE a.status = 'pending' AND a.escalated_at IS NULL AND a.approval_ts IS NOT NULL
               AND s.escalate_after IS NOT NULL AND cardinality(s.escalate_to) > 0
               AND a.created_at + s.escalate_after <= %s AND a.expires_at > %s
             ORDER BY a.id LIMIT %s""",
        (now, now, BATCH),
    ).fetchall()
    escalated = 0
    for row in rows:
        token = _token(row)
        if token is None:
            continue
        targets = list(row["escalate_to_now"])
        with conn.transaction():
            done = conn.execute(
                """UPDATE pending_actions SET escalated_at = %s, escalated_to = %s
                   WHERE id = %s AND tenant_id = %s AND status = 'pending'
                     AND escalated_at IS NULL
                   RETURNING *""",
                (now, targets, row["id"], row["tenant_id"]),
            ).fetchone()
            if done is not None:
                actions.audit(conn, done, "agent", "action.escalated", {"to": targets})
        if done is None:
            continue  # decided meanwhile, or another sweep escalated it
        escalated += 1
        client = client_for(token)
        waited = now - done["created_at"]
        note_in_approval_thread(client, done, escalation.thread_note(done, waited))
        refresh_approval_message(conn, client, done)
    return escalated


def _expire(conn: actions.Conn, client_for: Callable[[str], WebClient], now: datetime) -> int:
    rows = conn.execute(
        OPEN_ACTIONS + "WHERE a.status = 'pending' AND a.expires_at <= %s ORDER BY a.id LIMIT %s",
        (now, BATCH),
    ).fetchall()
    expired = 0
    for row in rows:
        done = actions.transition(
            conn,
            row,
            to="expired",
            allowed_from=["pending"],
            actor="agent",
            audit_action="action.expired",
        )
        if done is None:
            continue
        expired += 1
        token = _token(row)
        if token is None:
            continue  # expired all the same; nobody can be told in Slack without a token
        client = client_for(token)
        refresh_approval_message(conn, client, done)
        show_prompts(client, done, present=False)
        tell_requester(
            conn,
            client,
            done,
            "expired",
            f":alarm_clock: Nobody approved it in time, so it was not done: {people_summary(done)}.",
        )
    return expired


def _token(row: dict[str, Any]) -> str | None:
    """The tenant's bot token, or None (logged) when this process's key cannot open it:
    one workspace with an unreadable token must not stop the sweep for every other."""
    try:
        token = bot_token_of(row)
    except TokenUnreadable:
        log.error("sweep.bot_token_unreadable", tenant_id=row["tenant_id"], action_id=row["id"])
        return None
    assert token is not None  # OPEN_ACTIONS joins the installation
    return token
