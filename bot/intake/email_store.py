"""Commit concurrent SMTP sessions' arrived messages together.

Each message is stored for each tenant it reaches by one statement
(connectors/email/inbound_store.py's ARRIVAL_SQL: the sealed raw bytes and the request),
so a message is either wholly stored or not at all.

`GroupCommit` puts the messages that concurrent SMTP sessions hand over at about the same
time into one transaction, sent in one round trip (pipeline mode), and tells each session
only once that transaction has committed: one commit, one WAL flush, for the group, where
each message used to pay its own. Nothing waits to fill a group: while one commits, the
next gathers, so a lone message is committed at once and under load the cost is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from connectors.email.inbound_store import ARRIVAL_SQL
from core.db import AsyncPool

MAX_GROUP = 64  # messages committed in one transaction
# Failures that say Postgres is out of reach, not that a message is at fault.
UNREACHABLE = (psycopg.OperationalError, TimeoutError, PoolTimeout)

log = structlog.get_logger(__name__)


# ARRIVAL_SQL's parameters: one message for one tenant (inbound_store.arrival_params).
Arrival = dict[str, Any]


@dataclass(frozen=True)
class StoredArrival:
    request_id: int | None  # None: a copy of a message we already have


async def store_together(
    conn: AsyncConnection[dict[str, Any]], emails: Sequence[Arrival]
) -> list[StoredArrival]:
    """Store `emails` in one transaction, all or none, in one round trip; returns once
    committed.

    `conn` is in autocommit mode, so one statement is its own transaction. Several go in
    pipeline mode between a BEGIN and a COMMIT sent with them: psycopg's transaction()
    would wait for the BEGIN on its own round trip first.
    """
    if len(emails) == 1:
        rows = [await (await conn.execute(ARRIVAL_SQL, emails[0])).fetchone()]
    else:
        cursors = []
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                for email in emails:
                    cursor = conn.cursor()
                    await cursor.execute(ARRIVAL_SQL, email)
                    cursors.append(cursor)
                await conn.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")
            raise
        rows = [await cursor.fetchone() for cursor in cursors]
    # The final SELECT always returns one row.
    return [StoredArrival(request_id=row["request_id"] if row else None) for row in rows]


# One message's stores (one per tenant it reaches), and where its session waits.
_Pending = tuple[list[Arrival], "asyncio.Future[list[StoredArrival]]"]


class GroupCommit:
    """Messages from concurrent sessions, committed together; see the module's doc."""

    def __init__(self, pool: AsyncPool, *, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def store(self, emails: list[Arrival]) -> list[StoredArrival]:
        """Store one message's rows; returns once they are committed, raises if they were
        not (the session then answers 451: nothing promised)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the group committer is not running")
        done: asyncio.Future[list[StoredArrival]] = asyncio.get_running_loop().create_future()
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

    async def _store(self, emails: Any) -> list[StoredArrival]:
        batch = list(emails)
        async with asyncio.timeout(self.timeout):
            async with self.pool.connection(timeout=self.timeout) as conn:
                return await store_together(conn, batch)


def _settle(done: asyncio.Future[list[StoredArrival]], outcome: Any) -> None:
    if done.done():  # the session stopped waiting (it answered 451 already)
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
