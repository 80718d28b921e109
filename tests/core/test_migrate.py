"""Migrations: applied once, in order, safely from several processes at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.migrate import MigrationError, apply_migrations, discover, pending_migrations
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_database(postgres_server_url: str) -> Iterator[str]:
    url = create_database(postgres_server_url, prefix="chatops_migrate")
    yield url
    drop_database(postgres_server_url, url)


def test_fresh_database_gets_every_migration_once(empty_database: str) -> None:
    """A new database receives all migrations; running again applies nothing."""
    first = apply_migrations(empty_database)
    assert first == [m.name for m in discover()]
    assert apply_migrations(empty_database) == []
    assert pending_migrations(empty_database) == []


def test_two_processes_migrating_together_do_not_race(empty_database: str) -> None:
    """Concurrent runs apply each migration exactly once between them."""
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            results.append(apply_migrations(empty_database))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(m.name for m in discover())
    with psycopg.connect(empty_database) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == (len(discover()),)


def test_editing_an_applied_migration_is_refused(empty_database: str, tmp_path: Path) -> None:
    """A migration changed after it ran is reported instead of silently diverging."""
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    apply_migrations(empty_database, tmp_path)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(empty_database, tmp_path)


def test_pgvector_is_available(database_url: str) -> None:
    """The schema's database has the pgvector extension, 0.8 or newer."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert row is not None
    major, minor = (int(part) for part in row[0].split(".")[:2])
    assert (major, minor) >= (0, 8)


def test_audit_log_is_append_only(db: psycopg.Connection[dict[str, object]]) -> None:
    """Audit entries can be added but never changed or deleted."""
    db.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'test.append_only')")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE audit_log SET actor = 'someone else' WHERE action = 'test.append_only'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE action = 'test.append_only'")


def test_a_database_migrated_under_other_numbers_is_refused_by_name(
    empty_database: str, tmp_path: Path
) -> None:
    """Migrated when the files had gaps (0001, 0003), then given renumbered files (0001,
    0002, 0003): nothing is applied, and the message names what it has and what is here."""
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    (tmp_path / "0002_third.sql").write_text("CREATE TABLE third_table (id int);")
    apply_migrations(empty_database, tmp_path)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET version = 3 WHERE name = '0002_third.sql'")
        conn.execute(
            "UPDATE schema_migrations SET name = '0003_third.sql' WHERE name = '0002_third.sql'"
        )
    (tmp_path / "0003_fourth.sql").write_text("CREATE TABLE fourth_table (id int);")

    with pytest.raises(MigrationError) as refused:
        apply_migrations(empty_database, tmp_path)

    message = str(refused.value)
    assert "it has 0001_first.sql, 0003_third.sql" in message
    assert "the first 2 files are 0001_first.sql, 0002_third.sql" in message
    with psycopg.connect(empty_database) as conn:
        fourth = conn.execute("SELECT to_regclass('fourth_table') IS NULL").fetchone()
    assert fourth == (True,)


def test_migration_files_with_a_gap_are_refused(empty_database: str, tmp_path: Path) -> None:
    """Files numbered 0001, 0003: the number must say the order, so the gap is refused
    before anything runs."""
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    (tmp_path / "0003_third.sql").write_text("CREATE TABLE third_table (id int);")

    with pytest.raises(MigrationError, match="the next one is 0002"):
        apply_migrations(empty_database, tmp_path)
    with psycopg.connect(empty_database) as conn:
        first = conn.execute("SELECT to_regclass('first_table') IS NULL").fetchone()
    assert first == (True,)
