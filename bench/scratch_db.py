"""A database for one benchmark run: a fresh, migrated database on BENCH_DATABASE_URL's
server, or on an embedded Postgres in a temporary directory; dropped at the end."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bench_database(name: str) -> Iterator[str]:
    """The URL of database `name`, fresh and migrated, dropped (and the embedded server
    stopped) at the end."""
    # Imported here: a benchmark that never opens a database does not load them.
    from core.scratch_database import scratch_database
    from sandbox.embedded_postgres import start_embedded_postgres

    server_url = os.environ.get("BENCH_DATABASE_URL")
    server = None
    with tempfile.TemporaryDirectory(prefix=name.replace("_", "-") + "-") as workdir:
        if not server_url:
            server_url, server = start_embedded_postgres(Path(workdir) / "pg")
        try:
            with scratch_database(server_url, name) as url:
                yield url
        finally:
            if server is not None:
                server.cleanup()
