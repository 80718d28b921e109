"""What `chatops sandbox` keeps in its data folder, and `--reset`, which starts it afresh.

The workspace (`workspace.json`) and the product's data (the embedded Postgres and Redis,
the outbox) go together: `--reset` deletes them together, so a fresh workspace never meets
an old database's open approvals, nor an old workspace a fresh database. Logs are kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.errors import StartupError
from sandbox.workspace_store import STATE_FILE

POSTGRES_DIR = "postgres"
INGESTED_MARKER = "sample-knowledge.ingested"
# Everything --reset deletes: the product's data and the workspace that goes with it.
SANDBOX_DATA = (POSTGRES_DIR, "redis", "outbox", STATE_FILE, INGESTED_MARKER)


def database_identity(configured_url: str | None, data_dir: Path) -> str:
    """Which database a saved workspace belongs to: the configured one, or this folder's."""
    return configured_url or f"embedded:{(data_dir / POSTGRES_DIR).resolve()}"


def reset(data_dir: Path, configured_database: str | None) -> list[str]:
    """Delete the sandbox's data in `data_dir`; returns the names deleted.

    Refuses when DATABASE_URL names a database (the sandbox does not delete what it did not
    create, and keeping it would leave the fresh workspace without the cards for its
    approvals), and when a server still runs on the folder's embedded Postgres.
    """
    if configured_database:
        raise StartupError(
            "--reset deletes the sandbox's own data, but DATABASE_URL names another database, "
            "which it leaves alone. Unset DATABASE_URL, or empty that database yourself and "
            f"delete {data_dir / STATE_FILE}."
        )
    if _postgres_running(data_dir / POSTGRES_DIR):
        raise StartupError(
            f"--reset: a PostgreSQL server still runs on {data_dir / POSTGRES_DIR} (is another "
            "chatops sandbox using this folder?). Stop it first."
        )
    deleted = []
    for name in SANDBOX_DATA:
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        deleted.append(name)
    return deleted


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by the unprivileged user the wheel runs it as
    return True
