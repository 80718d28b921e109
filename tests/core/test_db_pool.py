"""The listeners' asyncio pool hands out a live connection without a round trip, and
still never one the server has ended."""

from __future__ import annotations

import asyncio
import time

import psycopg

from core.db import _server_was_silent, open_async_pool


async def backend_pid(conn: psycopg.AsyncConnection[dict[str, object]]) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
    assert row is not None
    pid = row["pid"]
    assert isinstance(pid, int)
    return pid


def test_an_idle_connection_is_handed_out_without_a_query(database_url: str) -> None:
    async def scenario() -> None:
        pool = await open_async_pool(database_url, max_size=1)
        try:
            async with pool.connection() as conn:
                first = await backend_pid(conn)
            async with pool.connection() as conn:
                assert _server_was_silent(conn)
                assert await backend_pid(conn) == first
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_connection_the_server_ended_is_replaced_before_it_is_handed_out(
    database_url: str,
) -> None:
    """The server's termination notice is waiting on the socket: the pool then runs the
    full check, finds the connection dead, and hands out a new one."""

    async def scenario() -> None:
        pool = await open_async_pool(database_url, max_size=1)
        try:
            async with pool.connection() as conn:
                ended = await backend_pid(conn)
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (ended,))
            deadline = time.monotonic() + 5
            while _server_was_silent(conn) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not _server_was_silent(conn)
            async with pool.connection(timeout=10) as conn:
                assert await backend_pid(conn) != ended
        finally:
            await pool.close()

    asyncio.run(scenario())
