"""A throwaway database on a server, migrated, for evaluations and benchmarks
that must not touch the product's data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.migrate import apply_migrations


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create a database next to the one `server_url` names, migrate it, yield its URL,
    and drop it afterwards, whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    url = make_conninfo("", **params)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_tenant(conn: psycopg.Connection[object], name: str) -> int:
    row = conn.execute("INSERT INTO tenants (name) VALUES (%s) RETURNING id", (name,)).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[index]
