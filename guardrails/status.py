"""What /agent status shows about the guardrails, for the async listener process.

The listener does not load the classifiers (the worker does, and stops at start if it
cannot), so their lines come from settings; the budget line reads Postgres through the
listener's own async connection, without recording any admin notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from core.settings import Settings
from guardrails.budgets import (
    SPEND_SQL,
    BudgetCheck,
    evaluate,
    periods,
    spend_from_row,
    spend_params,
)
from guardrails.policy import POLICY_SQL, parse_policy


def configured_lines(settings: Settings) -> list[str]:
    """One line per check, as configured: on with its model, or off and how to turn it on."""
    if settings.guardrails_toxicity_model:
        toxicity = (
            f"toxicity: on (model {settings.guardrails_toxicity_model}, "
            f"threshold {settings.guardrails_toxicity_threshold:g})"
        )
    else:
        toxicity = "toxicity: off (no model configured: set GUARDRAILS_TOXICITY_MODEL)"
    if settings.guardrails_injection_model:
        injection = (
            f"injection classifier: on (model {settings.guardrails_injection_model}, "
            f"threshold {settings.guardrails_injection_threshold:g})"
        )
    else:
        injection = (
            "injection classifier: off (heuristics only; set GUARDRAILS_INJECTION_MODEL to add "
            "a classifier)"
        )
    key = (
        "GUARDRAILS_VAULT_KEY"
        if settings.guardrails_vault_key and settings.guardrails_vault_key.get_secret_value()
        else "derived from SLACK_SIGNING_SECRET"
    )
    return [toxicity, injection, f"pii vault: encrypted, key {key}"]


async def budget_line(
    conn: AsyncConnection[Any],
    tenant_id: int,
    *,
    warn_ratio: float,
    now: datetime | None = None,
) -> str:
    """The tenant's spend today and this month against its budgets."""
    policy_row = await (await conn.execute(POLICY_SQL, (tenant_id,))).fetchone()
    document = _column(policy_row, "policy", 0)
    budgets = parse_policy(tenant_id, document).budgets
    day_start, month_start = periods(now or datetime.now(UTC))
    cursor = await conn.execute(SPEND_SQL, spend_params(tenant_id, day_start, month_start))
    row = await cursor.fetchone()
    assert row is not None
    names = [c.name for c in cursor.description or []]
    spend = spend_from_row(row if isinstance(row, dict) else dict(zip(names, row, strict=True)))
    state, uses = evaluate(budgets, spend, warn_ratio)
    return BudgetCheck(state, spend, uses, None, None).status_line()


def _column(row: Any, name: str, index: int) -> Any:
    if row is None:
        return None
    return row[name] if isinstance(row, dict) else row[index]
