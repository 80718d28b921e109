"""Postgres connection pools (psycopg 3). One pool per process, created at start.

Both pools survive a database restart: every connection is checked as it is handed out
(a dead one is dropped and replaced, so no caller gets a connection the restart killed),
and while the database is away the pool keeps trying to reconnect, never waiting more
than `RECONNECT_WINDOW` between two attempts, so work resumes within seconds of its
return.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection, OperationalError
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
    pool = Pool(
        database_url,
        connection_class=Connection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        name="chatops",
        check=Pool.check_connection,
        timeout=timeout,
        reconnect_timeout=RECONNECT_WINDOW,
        reconnect_failed=_keep_trying,
    )
    pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool


async def open_async_pool(
    database_url: str, *, max_size: int = 10, timeout: float = CHECKOUT_TIMEOUT
) -> AsyncPool:
    """An asyncio pool, for the listeners. ``timeout``: how long a request may wait for a
    connection (the Slack listener must answer within Slack's 3 seconds)."""
    pool = AsyncPool(
        database_url,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        name="chatops-async",
        check=AsyncPool.check_connection,
        timeout=timeout,
        reconnect_timeout=RECONNECT_WINDOW,
        reconnect_failed=_keep_trying_async,
    )
    await pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool


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
