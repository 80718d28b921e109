"""Postgres connection pools (psycopg 3). One pool per process, created at start."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

Pool = ConnectionPool[Connection[DictRow]]
AsyncPool = AsyncConnectionPool[AsyncConnection[DictRow]]
Conn = Connection[dict[str, Any]]

OPEN_TIMEOUT = 10.0  # seconds to wait for the first connection at start


def open_pool(database_url: str, *, max_size: int = 10) -> Pool:
    """A blocking pool, for workers and CLI commands."""
    pool = Pool(
        database_url,
        connection_class=Connection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        name="chatops",
    )
    pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool


async def open_async_pool(database_url: str, *, max_size: int = 10) -> AsyncPool:
    """An asyncio pool, for the HTTP listener."""
    pool = AsyncPool(
        database_url,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        name="chatops-async",
    )
    await pool.open(wait=True, timeout=OPEN_TIMEOUT)
    return pool
