"""Apply the numbered SQL files in `migrations/`, each exactly once, in order.

Safe to run from several processes at once: an advisory lock serialises them, and each
file runs in its own transaction together with the row that records it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant works; it only has to be the same for every process running migrations.
ADVISORY_LOCK_KEY = 0x63686174  # "chat"
FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

log = structlog.get_logger(__name__)


class MigrationError(Exception):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return migrations


def discover_contiguous(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The files, numbered 1, 2, 3 … with no gap, so the numbers say the order every
    database applies them in."""
    migrations = discover(directory)
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.name}: migrations are numbered without gaps; "
                f"the next one is {expected:04d}"
            )
    return migrations


def check_prefix(migrations: list[Migration], applied: dict[int, str]) -> None:
    """Refuse a database whose applied migrations are not the first files here, in order
    and by name: it was migrated by another version of the product (a later one, or one
    from before the files were renumbered), and applying the rest would guess."""
    expected = {m.version: m.name for m in migrations[: len(applied)]}
    if applied == expected:
        return

    def listed(versions: dict[int, str]) -> str:
        return ", ".join(versions[v] for v in sorted(versions)) or "none"

    raise MigrationError(
        "this database's applied migrations are not the first files in migrations/: "
        f"it has {listed(applied)}; the first {len(applied)} files are {listed(expected)}. "
        "It was migrated by another version of chatops-agent. Migrate it with that "
        "version's files, or start from an empty database (for the sandbox: a new "
        "--data-dir, or delete the old one)."
    )


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the names of those applied by this call."""
    migrations = discover_contiguous(directory)
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
            recorded = {version: (name, checksum) for version, name, checksum in rows}
            check_prefix(migrations, {version: name for version, (name, _) in recorded.items()})
            for migration in migrations:
                if migration.version in recorded:
                    _, checksum = recorded[migration.version]
                    if checksum != migration.checksum:
                        raise MigrationError(
                            f"{migration.name} was changed after it was applied; "
                            "write a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("migration.applied", migration=migration.name)
                applied_now.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied_now


def pending_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Names of migrations on disk that the database has not applied."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        applied: set[int] = set()
        if exists and exists[0]:
            applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    return [m.name for m in discover(directory) if m.version not in applied]
