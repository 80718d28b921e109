"""Model calls as `llm_usage` recorded them (the worker writes a row per call,
bot/agent/runs.py): what the console's `/agent status` reads of them. Budgets read
their own sums (guardrails/budgets.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

SPEND = """SELECT
     coalesce(sum(cost_usd) FILTER (WHERE created_at >= date_trunc('day', now())), 0)
       AS today,
     coalesce(sum(cost_usd), 0) AS month
   FROM llm_usage
   WHERE tenant_id = %s AND created_at >= date_trunc('month', now())"""
PROVIDER_HEALTH = """SELECT provider, count(*) FILTER (WHERE outcome = 'ok') AS ok,
          count(*) FILTER (WHERE outcome <> 'ok') AS failed
   FROM llm_usage WHERE tenant_id = %s AND created_at > now() - interval '15 minutes'
   GROUP BY provider ORDER BY provider"""


@dataclass(frozen=True)
class Spend:
    """A workspace's model spend in US dollars, in the database's day and month."""

    today: Decimal
    month: Decimal


@dataclass(frozen=True)
class ProviderHealth:
    """One provider's calls of the last 15 minutes."""

    provider: str
    ok: int
    failed: int


async def spend_async(conn: AsyncConnection[dict[str, Any]], tenant_id: int) -> Spend:
    """What the workspace's model calls cost today and this month."""
    row = await (await conn.execute(SPEND, (tenant_id,))).fetchone()
    assert row is not None  # an aggregate returns one row
    return Spend(today=Decimal(row["today"]), month=Decimal(row["month"]))


async def provider_health_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int
) -> list[ProviderHealth]:
    """Each provider the workspace called in the last 15 minutes, by name: how many
    calls succeeded and how many did not."""
    rows = await (await conn.execute(PROVIDER_HEALTH, (tenant_id,))).fetchall()
    return [ProviderHealth(r["provider"], int(r["ok"]), int(r["failed"])) for r in rows]
