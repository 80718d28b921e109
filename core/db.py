"""Postgres connection pools (psycopg 3). One pool per process, created at start.

Both pools survive a database restart: every connection is checked as it is handed out
(a dead one is dropped and replaced, so no caller gets a connection the restart killed),
and while the database is away the pool keeps trying to reconnect, never waiting more
than `RECONNECT_WINDOW` between two attempts, so work resumes within seconds of its
return. The listeners' asyncio pool checks without a round trip when it can
(`_server_was_silent`): they check out a connection per Slack request or SMTP commit.
"""

from __future__ import annotations

import select
from typing import Any

from psycopg import AsyncConnection, Connection, OperationalError
from psycopg import Error as PsycopgError
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

Pool = ConnectionPool[Connection[DictRow]]
AsyncPool = AsyncConnectionPool[AsyncConnection[DictRow]]
Conn = Connection[dict[str, Any]]

OPEN_TIMEOUT = 10.0  # seconds to wait for the first connection at start
# Seconds a caller waits for a connection before PoolTimeout (psycopg_pool's default).
CHECKOUT_TIMEOUT = 30.0
# psycopg_pool backs off exponentially between reconnection attempts (1, 2, 4, 8 s...)
# until it gives up after `reconnect_timeout` (5 minutes by default: a database back
# after a minute was noticed half a minute late, and callers already waiting got nothing
# until they timed out). A short window with a fresh start after each (`_keep_trying`)
# keeps every gap between two attempts under a few seconds, for as long as it is down.
RECONNECT_WINDOW = 4.0  # seconds


def open_pool(database_url: str, *, max_size: int = 10, timeout: float = CHECKOUT_TIMEOUT) -> Pool:
    """A blocking pool, for workers and CLI commands."""
    checker = _Checker()
    pool = Pool(
        database_url,
        connection_class=Connection[DictRow],
        name="chatops",
        check=checker.check,
        reconnect_failed=_keep_trying,
        **_pool_options(max_size, timeout),
    )
    checker.pool = pool
    pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool


async def open_async_pool(
    database_url: str, *, max_size: int = 10, timeout: float = CHECKOUT_TIMEOUT
) -> AsyncPool:
    """An asyncio pool, for the listeners. ``timeout``: how long a request may wait for a
    connection (the Slack listener must answer within Slack's 3 seconds)."""
    checker = _AsyncChecker()
    pool = AsyncPool(
        database_url,
        connection_class=AsyncConnection[DictRow],
        name="chatops-async",
        check=checker.check,
        reconnect_failed=_keep_trying_async,
        **_pool_options(max_size, timeout),
    )
    checker.pool = pool
    await pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool


def _pool_options(max_size: int, timeout: float) -> dict[str, Any]:
    """What both pools share: opened by their caller, rows as dicts, autocommit, and
    reconnecting within `RECONNECT_WINDOW`."""
    return {
        "min_size": 1,
        "max_size": max_size,
        "kwargs": {"row_factory": dict_row, "autocommit": True},
        "open": False,
        "timeout": timeout,
        "reconnect_timeout": RECONNECT_WINDOW,
    }


class _Checker:
    """Checks a connection as it is handed out. One found dead means the server
    restarted or went away, so every other idle connection is dead too: they are all
    checked and replaced at once, rather than one per checkout, each after a backoff
    sleep in psycopg_pool (1 s, then 2 s: a listener's 2-second budget gone)."""

    pool: Pool | None = None

    def check(self, conn: Connection[DictRow]) -> None:
        try:
            Pool.check_connection(conn)
        except Exception:
            if self.pool is not None:
                self.pool.check()
            raise


class _AsyncChecker:
    """`_Checker` for the asyncio pool, which skips the round trip for a connection the
    server has sent nothing on since it was last used.

    A restart (or a server or administrator ending the session) makes the server send a
    termination notice and close the socket, so a connection it killed always has
    something to read; only those pay for the query that proves them alive or dead.
    Under load that round trip cost each Slack ack and each SMTP commit a wait for the
    Postgres backend to be scheduled, as long as the query itself."""

    pool: AsyncPool | None = None

    async def check(self, conn: AsyncConnection[DictRow]) -> None:
        if _server_was_silent(conn):
            return
        try:
            await AsyncPool.check_connection(conn)
        except Exception:
            if self.pool is not None:
                await self.pool.check()
            raise


def _server_was_silent(conn: AsyncConnection[DictRow]) -> bool:
    """Whether an idle connection's socket has nothing to read and is not closed: the
    server has neither said anything nor hung up since the connection's last result."""
    if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)  # also reports a hang-up or an error on the socket
    except (OSError, ValueError, PsycopgError):
        return False


def _keep_trying(pool: Pool) -> None:
    # Called when a reconnection window ran out: `check` starts a new one at once (it
    # grows a pool that has no connection left), so the pool never stops trying.
    pool.check()


async def _keep_trying_async(pool: AsyncPool) -> None:
    await pool.check()


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached or went away mid-call
    (a restart, a failover, a network cut; psycopg_pool's PoolTimeout is one too), as
    opposed to a bug or bad data: the work is worth trying again once it is back."""
    return isinstance(exc, OperationalError)
