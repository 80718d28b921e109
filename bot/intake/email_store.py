"""Write received email durably: raw bytes, request row and thread, atomically; and commit
concurrent sessions' messages together.

A single SQL statement stores one message for one tenant (data-modifying CTEs run in one
snapshot), so a message is either wholly stored or not at all. A message we already have
(same tenant and Message-ID: the sender retried after losing our 250) changes nothing.

`GroupCommit` puts the messages that concurrent SMTP sessions hand over at about the same
time into one transaction, sent in one round trip (pipeline mode), and tells each session
only once that transaction has committed: one commit, one WAL flush, for the group, where
each message used to pay its own. Nothing waits to fill a group: while one commits, the
next gathers, so a lone message is committed at once and under load the cost is shared.

Nothing the tenant masks for good is stored in clear (guardrails/at_rest.py): card
numbers, SSNs, IBANs and secrets in the subject, text, quoted history, signature and
attachments' text are masked in the request's payload, the stored message and the subject
column; the raw bytes, which hold them all, are stored sealed (`RawMailCipher`: AES-GCM,
the tenant and Message-ID as associated data) and nothing reads them back in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from connectors.email.loops import Verdict
from connectors.email.parse import ParsedEmail
from connectors.email.payload import storable
from connectors.email.raw_mail import RawMailCipher
from connectors.email.threads import CONVERSATION_CTE, conversation_params
from core.db import AsyncPool
from core.store import requests
from guardrails.at_rest import ALWAYS_MASKED, AtRestMasker

STORE_SQL = (
    "WITH "
    + CONVERSATION_CTE
    + ",\n"
    + requests.EMAIL_REQUEST_CTE
    + """,
stored AS (
    INSERT INTO email_messages
        (tenant_id, conversation_id, direction, message_id, in_reply_to, "references",
         subject, from_address, envelope_from, envelope_to, raw, size_bytes, request_id,
         parse_error, auto_kind, raw_sealed)
    SELECT %(tenant_id)s, conversation.id, 'inbound', %(message_id)s, %(in_reply_to)s,
           %(references)s, %(subject)s, %(from_address)s, %(envelope_from)s,
           %(envelope_to)s, %(raw)b, %(size)s, request.id, %(parse_error)s, %(auto_kind)s,
           %(raw_sealed)s
      FROM request, conversation
    RETURNING id
),
said AS (
    INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
    SELECT %(tenant_id)s, conversation.id, 'user', %(from_address)s, %(text)s,
           %(message_id)s
      FROM request, conversation
     WHERE %(answerable)s
    ON CONFLICT (conversation_id, external_id) DO NOTHING
)
SELECT (SELECT id FROM request) AS request_id,
       (SELECT id FROM conversation) AS conversation_id,
       (SELECT value FROM split) AS split
"""
)

MAX_TEXT_CHARS = 100_000  # of the subject-less text stored in `messages`
MAX_GROUP = 64  # messages committed in one transaction
# Failures that say Postgres is out of reach, not that a message is at fault.
UNREACHABLE = (psycopg.OperationalError, TimeoutError, PoolTimeout)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredEmail:
    request_id: int | None  # None: a copy of a message we already have
    conversation_id: int
    status: str  # 'received' (to answer), 'ignored' (never answered), 'failed' (unparseable)
    # It named a conversation its sender took no part in, so it started its own
    # (connectors/email/threads.py).
    split: bool = False


# Payload keys that hold addresses, ids and our own notes, never the sender's free text:
# left as they are (a masked address could not be answered).
STRUCTURAL_KEYS = frozenset(
    {
        "version",
        "channel",
        "inbox",
        "message_id",
        "has_message_id",
        "in_reply_to",
        "references",
        "from",
        "reply_to",
        "to",
        "cc",
        "date",
        "envelope",
        "body_source",
        "content_type",
        "no_reply",
        "defects",
        "parse_error",
    }
)


def stored_as_is(key: str) -> bool:
    """Whether a payload key holds no free text (STRUCTURAL_KEYS): never masked."""
    return key in STRUCTURAL_KEYS


def seal_stored_raw(conn: psycopg.Connection[Any], cipher: RawMailCipher, batch: int = 200) -> int:
    """Seal the raw bytes of inbound mail stored before raw bytes were sealed; returns how
    many messages. In batches, each row once (`chatops migrate` runs it)."""
    sealed = 0
    while True:
        rows = conn.execute(
            """SELECT id, tenant_id, message_id, raw FROM email_messages
                WHERE direction = 'inbound' AND NOT raw_sealed ORDER BY id LIMIT %s""",
            (batch,),
        ).fetchall()
        if not rows:
            return sealed
        for row_id, tenant_id, message_id, raw in (_fields(r) for r in rows):
            conn.execute(
                """UPDATE email_messages SET raw = %s, raw_sealed = true
                    WHERE id = %s AND NOT raw_sealed""",
                (cipher.seal(tenant_id, message_id, bytes(raw)), row_id),
            )
        sealed += len(rows)


def _fields(row: Any) -> tuple[int, int, str, bytes]:
    if isinstance(row, dict):
        return row["id"], row["tenant_id"], row["message_id"], row["raw"]
    return row[0], row[1], row[2], row[3]


@dataclass(frozen=True)
class EmailToStore:
    """One message for one tenant, ready for STORE_SQL."""

    params: dict[str, Any]
    status: str


def email_to_store(
    *,
    tenant_id: int,
    raw: bytes,
    mail: ParsedEmail,
    payload: dict[str, Any],
    envelope_from: str,
    envelope_to: list[str],
    verdict: Verdict | None,
    correlation_id: str,
    masker: AtRestMasker | None = None,
    entities: Collection[str] = ALWAYS_MASKED,
    raw_cipher: RawMailCipher | None = None,
) -> EmailToStore:
    """The rows for one tenant. `payload` is the request's (connectors.email.payload's
    request_payload), which the caller has screened for what to mask: with a masker, what
    `entities` names is masked for good in it, and the stored subject and text come from
    it; without one it is stored as it is. With a cipher, the raw bytes are stored sealed."""
    if mail.error is not None:
        status, error = "failed", f"unparseable email: {mail.error}"
    elif verdict is not None:
        status, error = "ignored", None
    else:
        status, error = "received", None
    if masker is not None:
        payload = masker.mask_deep(payload, entities, skip=stored_as_is)
    # The payload holds the same subject and text (made storable, and masked): masked once.
    subject = payload["subject"]
    text = (payload["text"] or subject)[:MAX_TEXT_CHARS]
    fields = conversation_params(tenant_id, mail) | {
        "message_id": mail.message_id,
        "status": status,
        "error": error,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references),
        "subject": subject,
        "from_address": mail.sender.address if mail.sender else "",
        "envelope_from": envelope_from,
        "envelope_to": envelope_to,
        "size": len(raw),
        "parse_error": mail.error,
        "auto_kind": verdict.kind if verdict else None,
        "text": text,
        "answerable": status == "received",
    }
    params = storable(fields) | {
        "raw": raw_cipher.seal(tenant_id, mail.message_id, raw) if raw_cipher else raw,
        "raw_sealed": raw_cipher is not None,
        "payload": Jsonb(payload),
        "correlation_id": correlation_id,
    }
    return EmailToStore(params, status)


async def store_together(
    conn: AsyncConnection[dict[str, Any]], emails: Sequence[EmailToStore]
) -> list[StoredEmail]:
    """Store `emails` in one transaction, all or none, in one round trip; returns once
    committed.

    `conn` is in autocommit mode, so one statement is its own transaction. Several go in
    pipeline mode between a BEGIN and a COMMIT sent with them: psycopg's transaction()
    would wait for the BEGIN on its own round trip first.
    """
    if len(emails) == 1:
        rows = [await (await conn.execute(STORE_SQL, emails[0].params)).fetchone()]
    else:
        cursors = []
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                for email in emails:
                    cursor = conn.cursor()
                    await cursor.execute(STORE_SQL, email.params)
                    cursors.append(cursor)
                await conn.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")
            raise
        rows = [await cursor.fetchone() for cursor in cursors]
    stored = []
    for email, row in zip(emails, rows, strict=True):
        assert row is not None  # the final SELECT always returns one row
        stored.append(
            StoredEmail(
                request_id=row["request_id"],
                conversation_id=row["conversation_id"],
                status=email.status,
                split=bool(row["split"]),
            )
        )
    return stored


# One message's stores (one per tenant it reaches), and where its session waits.
_Pending = tuple[list[EmailToStore], "asyncio.Future[list[StoredEmail]]"]


class GroupCommit:
    """Messages from concurrent sessions, committed together; see the module's doc."""

    def __init__(self, pool: AsyncPool, *, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def store(self, emails: list[EmailToStore]) -> list[StoredEmail]:
        """Store one message's rows; returns once they are committed, raises if they were
        not (the session then answers 451: nothing promised)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the group committer is not running")
        done: asyncio.Future[list[StoredEmail]] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((emails, done))
        return await done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._pending.empty():
            _, done = self._pending.get_nowait()
            if not done.done():
                done.set_exception(RuntimeError("the SMTP listener is stopping"))

    async def _run(self) -> None:
        while True:
            group = [await self._pending.get()]
            while not self._pending.empty() and len(group) < MAX_GROUP:
                group.append(self._pending.get_nowait())
            waiting = [item for item in group if not item[1].done()]  # a session gone
            if waiting:
                await self._commit(waiting)

    async def _commit(self, group: list[_Pending]) -> None:
        try:
            results = await self._store(email for emails, _ in group for email in emails)
        except Exception as exc:
            if len(group) == 1 or isinstance(exc, UNREACHABLE):
                for _, done in group:
                    _settle(done, exc)
                return
            # One message may be what failed the group: each is tried again on its own,
            # so the others are still stored and answered 250.
            log.warning("smtp.group_commit_failed", messages=len(group), error=type(exc).__name__)
            for item in group:
                await self._commit([item])
            return
        at = 0
        for emails, done in group:
            _settle(done, results[at : at + len(emails)])
            at += len(emails)

    async def _store(self, emails: Any) -> list[StoredEmail]:
        batch = list(emails)
        async with asyncio.timeout(self.timeout):
            async with self.pool.connection(timeout=self.timeout) as conn:
                return await store_together(conn, batch)


def _settle(done: asyncio.Future[list[StoredEmail]], outcome: Any) -> None:
    if done.done():  # the session stopped waiting (it answered 451 already)
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
