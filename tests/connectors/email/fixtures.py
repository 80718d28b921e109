"""The email tests' fixtures, loaded by `pytest_plugins = ["tests.connectors.email.fixtures"]`.

Their own database: the Slack stack's sweeper and worker, which share the session
database, never see their requests. It gets the foundation and the email migrations
only (and the tenant settings threading reads): the email channel depends on nothing
else, and the tests stay independent of migrations other issues are still writing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from core.migrate import MIGRATIONS_DIR, apply_migrations
from tests.conftest import create_database, drop_database
from tests.connectors.email.support import (
    DB,
    RELAXED_LIMITS,
    RunningListener,
    Tenant,
    email_settings,
    make_tenant,
    start_listener,
)

# 0008: the request id every stored request keeps (core/correlation.py).
# 0002 and 0018: who may join a thread is a tenant setting (connectors/email/threads.py).
# 0003 and 0021: what a tenant masks for good is masked before storing, and raw bytes are
# stored sealed (guardrails/at_rest.py, bot/intake/email_store.py).
EMAIL_MIGRATIONS = (
    "0001_foundation.sql",
    "0002_review.sql",
    "0003_guardrails.sql",
    "0004_email.sql",
    "0008_correlation_ids.sql",
    "0018_email_intake_security.sql",
    "0021_sealed_raw_email.sql",
)


@pytest.fixture(scope="session")
def email_database_url(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("email-migrations")
    # Numbered 0001, 0002 … here too: the migrator takes files without gaps only.
    for number, name in enumerate(EMAIL_MIGRATIONS, start=1):
        shutil.copy(MIGRATIONS_DIR / name, directory / f"{number:04d}_{name[5:]}")
    url = create_database(postgres_server_url, prefix="chatops_email")
    apply_migrations(url, directory)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, url)


@pytest.fixture
def email_db(email_database_url: str) -> Iterator[DB]:
    with psycopg.connect(email_database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def email_tenant(email_db: DB) -> Tenant:
    return make_tenant(email_db)


@pytest.fixture
def smtp_listener(
    email_database_url: str, redis_url: str, queue_namespace: str
) -> Iterator[RunningListener]:
    settings = email_settings(
        email_database_url, redis_url, f"{queue_namespace}-email", **RELAXED_LIMITS
    )
    running = start_listener(settings)
    try:
        yield running
    finally:
        running.stop()
