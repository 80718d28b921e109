"""`/agent status` reads its numbers from each table family's module; they count what
the one query across the four tables the console used to run counted."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core.store import llm_usage, requests
from review import actions

DB = psycopg.Connection[dict[str, Any]]

# The console's query before the counts moved to the stores, kept as the reference.
REFERENCE = """SELECT
     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
        AND status IN ('received', 'queued', 'running')) AS backlog,
     (SELECT count(*) FROM inbound_requests WHERE tenant_id = %(t)s
        AND status = 'failed' AND received_at > now() - interval '1 day')
        AS failed_today,
     (SELECT count(*) FROM pending_actions WHERE tenant_id = %(t)s
        AND status = 'pending') AS pending,
     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
        AND created_at >= date_trunc('day', now())) AS spend_today,
     (SELECT coalesce(sum(cost_usd), 0) FROM llm_usage WHERE tenant_id = %(t)s
        AND created_at >= date_trunc('month', now())) AS spend_month"""


@pytest.fixture
def tenant(db: DB) -> int:
    row = db.execute(
        "INSERT INTO tenants (name) VALUES ('status counts test') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row["id"])


def _request(db: DB, tenant: int, n: int, status: str, age: str) -> None:
    db.execute(
        """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload,
             status, received_at)
           VALUES (%s, 'slack', %s, 'message', '{}', %s, now() - %s::interval)""",
        (tenant, f"status-{n}", status, age),
    )


def _usage(db: DB, tenant: int, provider: str, outcome: str, cost: str, age: str) -> None:
    db.execute(
        """INSERT INTO llm_usage (tenant_id, provider, model, purpose, outcome, cost_usd,
             latency_ms, created_at)
           VALUES (%s, %s, 'm', 'answer', %s, %s, 10, now() - %s::interval)""",
        (tenant, provider, outcome, Decimal(cost), age),
    )


def test_the_status_numbers_are_those_of_the_console_query(
    database_url: str, db: DB, tenant: int
) -> None:
    for n, (status, age) in enumerate(
        [
            ("received", "1 minute"),
            ("queued", "2 days"),
            ("running", "1 hour"),
            ("done", "1 hour"),
            ("failed", "1 hour"),
            ("failed", "2 days"),
            ("ignored", "1 hour"),
        ]
    ):
        _request(db, tenant, n, status, age)
    _usage(db, tenant, "primary", "ok", "0.5", "1 minute")
    _usage(db, tenant, "primary", "timeout", "0.25", "5 minutes")
    _usage(db, tenant, "fallback", "ok", "0.125", "1 minute")
    _usage(db, tenant, "primary", "ok", "2", "40 days")  # neither this month nor today

    async def read() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, row_factory=dict_row
        ) as conn:
            return (
                await requests.backlog_async(conn, tenant),
                await actions.count_waiting_async(conn, tenant),
                await llm_usage.spend_async(conn, tenant),
                await llm_usage.provider_health_async(conn, tenant),
            )

    backlog, pending, spend, health = asyncio.run(read())
    reference = db.execute(REFERENCE, {"t": tenant}).fetchone()
    assert reference is not None

    assert (backlog.open, backlog.failed_last_day) == (3, 1)
    assert (backlog.open, backlog.failed_last_day, pending) == (
        reference["backlog"],
        reference["failed_today"],
        reference["pending"],
    )
    assert (spend.today, spend.month) == (reference["spend_today"], reference["spend_month"])
    assert [(h.provider, h.ok, h.failed) for h in health] == [
        ("fallback", 1, 0),
        ("primary", 1, 1),
    ]
