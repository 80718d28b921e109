"""Pending actions in Postgres and their transitions.

Every transition is one guarded UPDATE (`... WHERE status IN (allowed states)`) and its
audit entry, in one transaction: two approvers at the same moment, or a retried event,
find the action already moved on and change nothing.

Nothing is stored in clear that the tenant masks for good (card numbers, SSNs, IBANs,
secrets, and whatever else its policy says; guardrails/at_rest.py): not in the action,
not in an approver's edit, not in the audit log. The audit entry of a proposal keeps the
summary as approvers see it, as the log cannot be erased later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, Connection, sql
from psycopg.types.json import Jsonb

from core.db import AsyncPool
from core.store import audit as audit_log
from guardrails.at_rest import as_approvers_see, default_masker, for_storage, policy_of

Row = dict[str, Any]
Conn = Connection[Row]

OPEN_STATES = ("pending", "approved", "executing")


def propose(
    conn: Conn,
    *,
    tenant_id: int,
    conversation_id: int,
    run_id: int | None,
    tool: str,
    summary: str,
    payload: dict[str, Any],
    requested_by: str,
    reason: str,
    citations: list[str],
    flags: list[str],
    idempotency_key: str,
    ttl: timedelta,
    shown: dict[str, Any] | None = None,
    recipient_domains: list[str] | None = None,
) -> Row:
    """Record an action the agent wants to take; proposing the same key twice is a no-op.
    `recipient_domains`: the domains of its real recipients, for an action that emails
    (what "always allow" rules and always-review domains judge; review/rules.py)."""
    policy = policy_of(conn, tenant_id)
    # What people read, masked as the policy says; the arguments, only of what is masked
    # whatever the policy (a reply must keep its recipients to be sent).
    summary, reason = for_storage(conn, tenant_id, (summary, reason), policy)
    payload = _masked(payload)
    if shown is not None:
        shown = for_storage(conn, tenant_id, shown, policy)
    audited = {"tool": tool, "summary": (shown or {}).get("summary", summary)}
    audited = as_approvers_see(conn, tenant_id, audited, policy)
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO pending_actions
                 (tenant_id, conversation_id, run_id, tool, summary, payload, original_payload,
                  requested_by, reason, citations, flags, idempotency_key, expires_at, shown,
                  recipient_domains)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + %s, %s, %s)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING *""",
            (
                tenant_id,
                conversation_id,
                run_id,
                tool,
                summary,
                Jsonb(payload),
                Jsonb(payload),
                requested_by,
                reason,
                Jsonb(citations),
                Jsonb(flags),
                idempotency_key,
                ttl,
                Jsonb(shown) if shown is not None else None,
                recipient_domains,
            ),
        ).fetchone()
        if row is None:
            existing = conn.execute(
                "SELECT * FROM pending_actions WHERE idempotency_key = %s AND tenant_id = %s",
                (idempotency_key, tenant_id),
            ).fetchone()
            assert existing is not None
            return existing
        row = _with_hash(conn, row)
        # Whoever asked, as approvers may see them too (an email sender, partly masked).
        actor = str((shown or {}).get("requested_by", requested_by))
        audit(conn, row, actor, "action.requested", audited)
        return row


def load(conn: Conn, tenant_id: int, action_id: int) -> Row | None:
    return conn.execute(
        "SELECT * FROM pending_actions WHERE id = %s AND tenant_id = %s", (action_id, tenant_id)
    ).fetchone()


def by_approval_message(conn: Conn, tenant_id: int, channel: str, ts: str) -> Row | None:
    return conn.execute(
        """SELECT * FROM pending_actions
           WHERE tenant_id = %s AND approval_channel_id = %s AND approval_ts = %s""",
        (tenant_id, channel, ts),
    ).fetchone()


def transition(
    conn: Conn,
    action: Row,
    *,
    to: str,
    allowed_from: Iterable[str],
    actor: str,
    audit_action: str,
    changes: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    version: int | None = None,
) -> Row | None:
    """Move the action to `to` if it is still in one of `allowed_from` (and, given
    `version`, still at that version); None if it was not.

    An approval binds to the version it approves: the row's version and the hash of what
    it shows are recorded with it, in the same UPDATE (execution runs only that). A new
    payload (an edit) is a new version, with the hash of what the card will show now,
    stored in the same transaction."""
    changes = {k: _masked(v) for k, v in (changes or {}).items()}
    edited = "payload" in changes
    if edited:
        changes |= {"version": NEXT_VERSION, "versioned_at": NOW}
    assignments: list[sql.Composable] = [sql.SQL("status = {}").format(sql.Literal(to))]
    for column, value in changes.items():
        assignments.append(sql.SQL("{} = {}").format(sql.Identifier(column), _value(value)))
    if to == "approved":
        assignments.append(sql.SQL("approved_version = version, approved_hash = shown_hash"))
    guard = (
        sql.SQL(" AND version = {}").format(sql.Literal(version))
        if version is not None
        else sql.SQL("")
    )
    query = sql.SQL(
        "UPDATE pending_actions SET {} WHERE id = %s AND tenant_id = %s AND status = ANY(%s){}"
        " RETURNING *"
    ).format(sql.SQL(", ").join(assignments), guard)
    with conn.transaction():
        row = conn.execute(
            query, (action["id"], action["tenant_id"], list(allowed_from))
        ).fetchone()
        if row is not None and edited:
            row = _with_hash(conn, row)
        if row is not None:
            audit(conn, row, actor, audit_action, details or {})
    return row


def set_fields(conn: Conn, action: Row, **fields: Any) -> None:
    """Bookkeeping that is not a state change (where the approval message is, reminders)."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), _value(v)) for k, v in fields.items()
    )
    conn.execute(
        sql.SQL("UPDATE pending_actions SET {} WHERE id = %s AND tenant_id = %s").format(
            assignments
        ),
        (action["id"], action["tenant_id"]),
    )


def shown_hash(action: Mapping[str, Any]) -> str:
    """The hash an approval binds to: the tool, the arguments as the card shows them (the
    approver view, when there is one) and as they are stored to run, as canonical JSON."""
    canonical = json.dumps(
        {
            "tool": action["tool"],
            "shown": (action.get("shown") or {}).get("payload"),
            "payload": action["payload"],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _with_hash(conn: Conn, row: Row) -> Row:
    """`row` with the hash of what it now shows stored: computed from the row as the
    database returned it, as execution will read it (jsonb's own form of the values)."""
    fingerprint = shown_hash(row)
    conn.execute(
        "UPDATE pending_actions SET shown_hash = %s WHERE id = %s AND tenant_id = %s",
        (fingerprint, row["id"], row["tenant_id"]),
    )
    return {**row, "shown_hash": fingerprint}


NEXT_VERSION = sql.SQL("version + 1")  # pass as `version` in the changes of an edit
NOW = sql.SQL("now()")  # pass as a value to use the database's clock
NULL = sql.SQL("NULL")  # pass as a value to clear a column


def _value(value: Any) -> sql.Composable:
    if isinstance(value, sql.Composable):
        return value
    if isinstance(value, dict | list):
        return sql.Literal(Jsonb(value))
    return sql.Literal(value)


def audit(conn: Conn, action: Row, actor: str, what: str, details: dict[str, Any]) -> None:
    """An entry of the action's history, as its approvers may see it (an edit's before
    and after, a result): the log cannot be erased later."""
    if details:
        details = as_approvers_see(conn, action["tenant_id"], details)
    audit_log.append(
        conn,
        audit_log.Entry(
            tenant_id=action["tenant_id"],
            actor=actor,
            action=what,
            subject=f"action:{action['id']}",
            details=details,
        ),
    )


def _masked(value: Any) -> Any:
    """Cards, SSNs, IBANs and secrets masked (an approver's edit, a reason typed in)."""
    if isinstance(value, sql.Composable):
        return value
    return default_masker().mask_deep(value)


async def load_action(pool: AsyncPool, tenant_id: int, action_id: int) -> Row | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM pending_actions WHERE id = %s AND tenant_id = %s", (action_id, tenant_id)
        )
        return await cursor.fetchone()


async def load_action_by_message(
    pool: AsyncPool, tenant_id: int, channel: str, ts: str
) -> Row | None:
    """The action whose approval card is message `ts` in `channel`."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """SELECT * FROM pending_actions
               WHERE tenant_id = %s AND approval_channel_id = %s AND approval_ts = %s""",
            (tenant_id, channel, ts),
        )
        return await cursor.fetchone()


async def waiting_async(conn: AsyncConnection[Row], tenant_id: int, limit: int) -> list[Row]:
    """The oldest `limit` actions waiting for a decision (what `/agent approvals` lists)."""
    cursor = await conn.execute(
        """SELECT id, summary, shown, requested_by, approval_channel_id, approval_ts, expires_at
           FROM pending_actions WHERE tenant_id = %s AND status = 'pending'
           ORDER BY created_at LIMIT %s""",
        (tenant_id, limit),
    )
    return await cursor.fetchall()


async def count_waiting_async(conn: AsyncConnection[Row], tenant_id: int) -> int:
    """How many actions wait for a decision (what `/agent status` counts)."""
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM pending_actions WHERE tenant_id = %s AND status = 'pending'",
        (tenant_id,),
    )
    row = await cursor.fetchone()
    assert row is not None  # an aggregate returns one row
    return int(row["n"])
