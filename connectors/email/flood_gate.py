"""Whether an email request gets a draft (and an approval card) of its own, or joins its
inbox's digest: one client once produced 122 approval cards in a minute.

Within an hour, at most `per_sender` requests from one sender and `per_inbox` requests
to one inbox are drafted. Beyond either, a request is held: nothing is drafted and no
model is called, and it is listed on its inbox's digest card (review/email_digest.py),
one card per inbox and hour, however many arrive. Each request is judged once (a retried
job finds its verdict), and the judging of one inbox's requests is serialised by an
advisory lock, so concurrent workers cannot all slip under the limit together.

The SQL of `email_intake_gate` and `email_digests` lives here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import Connection

from connectors.email.inboxes import normalize_address
from core.store import requests

WINDOW_SECONDS = 3600
LOCK_NAMESPACE = 0x64  # high bits of the advisory lock keys taken here
DIGEST_LISTED = 10  # most recent held emails a digest card lists by name

# released: held, then released by an approver from the digest card; drafted as usual.
Outcome = Literal["drafted", "held", "released"]


@dataclass(frozen=True)
class FloodLimits:
    per_sender: int = 5  # drafts per sender per hour
    per_inbox: int = 30  # drafts per inbox per hour


@dataclass(frozen=True)
class GateVerdict:
    outcome: Outcome
    digest_id: int | None = None
    reason: str | None = None  # why it was held, for the request's record


@dataclass(frozen=True)
class HeldEmail:
    sender: str
    subject: str
    received_at: datetime


@dataclass(frozen=True)
class Digest:
    id: int
    tenant_id: int
    inbox: str
    approval_channel_id: str | None
    approval_ts: str | None
    post_intent_at: datetime | None
    held: int  # how many emails still wait on it
    latest: tuple[HeldEmail, ...]  # the most recent of those, newest first
    released: int = 0  # how many an approver released for drafting
    released_by: str | None = None  # who released them last (a Slack user id)
    released_at: datetime | None = None


def admit(
    conn: Connection[dict[str, Any]],
    *,
    tenant_id: int,
    request_id: int,
    inbox: str,
    sender: str,
    subject: str,
    limits: FloodLimits,
) -> GateVerdict:
    """Draft this request, or hold it on its inbox's digest; the same answer every time
    it is asked about the same request."""
    inbox, sender = normalize_address(inbox), normalize_address(sender)
    with _locked(conn, zlib.crc32(f"{tenant_id}:{inbox}".encode())):
        earlier = conn.execute(
            "SELECT outcome, digest_id FROM email_intake_gate WHERE request_id = %s",
            (request_id,),
        ).fetchone()
        if earlier is not None:
            return GateVerdict(earlier["outcome"], earlier["digest_id"])
        counts = conn.execute(
            """SELECT count(*) FILTER (WHERE inbox = %(inbox)s) AS to_inbox,
                      count(*) FILTER (WHERE sender = %(sender)s) AS from_sender
                 FROM email_intake_gate
                WHERE tenant_id = %(tenant_id)s AND outcome = 'drafted'
                  AND (inbox = %(inbox)s OR sender = %(sender)s)
                  AND created_at > now() - make_interval(secs => %(window)s)""",
            {"tenant_id": tenant_id, "inbox": inbox, "sender": sender, "window": WINDOW_SECONDS},
        ).fetchone()
        assert counts is not None
        reason = None
        if counts["from_sender"] >= limits.per_sender:
            reason = f"more than {limits.per_sender} emails from this sender in an hour"
        elif counts["to_inbox"] >= limits.per_inbox:
            reason = f"more than {limits.per_inbox} emails to {inbox} in an hour"
        digest_id = _open_digest(conn, tenant_id, inbox) if reason else None
        conn.execute(
            """INSERT INTO email_intake_gate
                 (request_id, tenant_id, inbox, sender, subject, outcome, digest_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (
                request_id,
                tenant_id,
                inbox,
                sender,
                subject[:200],
                "held" if reason else "drafted",
                digest_id,
            ),
        )
    if reason is None:
        return GateVerdict("drafted")
    return GateVerdict("held", digest_id, f"held in the inbox's digest: {reason}")


def load_digest(conn: Connection[dict[str, Any]], tenant_id: int, digest_id: int) -> Digest | None:
    row = conn.execute(
        """SELECT d.*,
                  (SELECT count(*) FROM email_intake_gate g
                    WHERE g.digest_id = d.id AND g.outcome = 'held') AS held,
                  (SELECT count(*) FROM email_intake_gate g
                    WHERE g.digest_id = d.id AND g.outcome = 'released') AS released
             FROM email_digests d WHERE d.id = %s AND d.tenant_id = %s""",
        (digest_id, tenant_id),
    ).fetchone()
    if row is None:
        return None
    latest = conn.execute(
        """SELECT sender, subject, created_at AS received_at FROM email_intake_gate
            WHERE digest_id = %s AND tenant_id = %s AND outcome = 'held'
            ORDER BY created_at DESC, request_id DESC
            LIMIT %s""",
        (digest_id, tenant_id, DIGEST_LISTED),
    ).fetchall()
    return Digest(
        id=row["id"],
        tenant_id=row["tenant_id"],
        inbox=row["inbox"],
        approval_channel_id=row["approval_channel_id"],
        approval_ts=row["approval_ts"],
        post_intent_at=row["post_intent_at"],
        held=row["held"],
        latest=tuple(HeldEmail(**r) for r in latest),
        released=row["released"],
        released_by=row["released_by"],
        released_at=row["released_at"],
    )


def release_held(
    conn: Connection[dict[str, Any]], tenant_id: int, digest_id: int, user: str
) -> list[int]:
    """Mark the digest's waiting emails released by `user` and put their requests back in
    the queue's hands (status 'queued'); their request ids. Releasing twice (a retried
    job, two approvers) releases each email once."""
    with conn.transaction():
        rows = conn.execute(
            """UPDATE email_intake_gate SET outcome = 'released'
                WHERE digest_id = %s AND tenant_id = %s AND outcome = 'held'
                RETURNING request_id""",
            (digest_id, tenant_id),
        ).fetchall()
        ids = [r["request_id"] for r in rows]
        if ids:
            requests.mark_released(conn, tenant_id, ids)
            conn.execute(
                """UPDATE email_digests SET released_by = %s, released_at = now()
                    WHERE id = %s AND tenant_id = %s""",
                (user, digest_id, tenant_id),
            )
    return ids


def mark_post_intent(conn: Connection[dict[str, Any]], digest: Digest, channel: str) -> None:
    conn.execute(
        """UPDATE email_digests SET post_intent_at = now(), approval_channel_id = %s
            WHERE id = %s AND tenant_id = %s""",
        (channel, digest.id, digest.tenant_id),
    )


def mark_posted(conn: Connection[dict[str, Any]], digest: Digest, channel: str, ts: str) -> None:
    conn.execute(
        """UPDATE email_digests SET approval_channel_id = %s, approval_ts = %s
            WHERE id = %s AND tenant_id = %s""",
        (channel, ts, digest.id, digest.tenant_id),
    )


@contextmanager
def digest_lock(conn: Connection[dict[str, Any]], digest_id: int) -> Iterator[None]:
    """One worker at a time posts or updates a digest's card."""
    with _locked(conn, digest_id + (1 << 40)):
        yield


def _open_digest(conn: Connection[dict[str, Any]], tenant_id: int, inbox: str) -> int:
    """This hour's digest of the inbox: the one opened within the window, else a new one."""
    row = conn.execute(
        """SELECT id FROM email_digests
            WHERE tenant_id = %s AND inbox = %s
              AND opened_at > now() - make_interval(secs => %s)
            ORDER BY opened_at DESC LIMIT 1""",
        (tenant_id, inbox, WINDOW_SECONDS),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "INSERT INTO email_digests (tenant_id, inbox) VALUES (%s, %s) RETURNING id",
            (tenant_id, inbox),
        ).fetchone()
    assert row is not None
    digest_id: int = row["id"]
    return digest_id


@contextmanager
def _locked(conn: Connection[dict[str, Any]], key: int) -> Iterator[None]:
    """A session advisory lock (the worker's connections run in autocommit)."""
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, _int4(key)))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, _int4(key)))


def _int4(value: int) -> int:
    """The two-key advisory lock takes int4s."""
    return (value % (1 << 32)) - (1 << 31)
