"""Per-tenant token and cost budgets, checked before every model call.

Spend is what `llm_usage` recorded (tokens and cost_usd, priced with LLM_PRICES when the
call was made); limits come from the tenant's policy. At `warn_ratio` of any limit the
admins are told once per period; at 100% no further call is made until the period
ends, and the person asking is told why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import structlog

from core.db import Pool
from guardrails.policy import BudgetPolicy, PolicyStore

log = structlog.get_logger(__name__)

DEFAULT_WARN_RATIO = 0.8


@dataclass(frozen=True)
class Spend:
    day_tokens: int
    day_usd: Decimal
    month_tokens: int
    month_usd: Decimal


@dataclass(frozen=True)
class LimitUse:
    period: Literal["day", "month"]
    measure: Literal["tokens", "usd"]
    spent: Decimal
    limit: Decimal

    @property
    def ratio(self) -> float:
        if self.limit == 0:
            return float("inf")
        return float(self.spent / self.limit)

    def describe(self) -> str:
        what = "tokens" if self.measure == "tokens" else "USD"
        spent = f"{self.spent:,.0f}" if self.measure == "tokens" else f"{self.spent:,.2f}"
        limit = f"{self.limit:,.0f}" if self.measure == "tokens" else f"{self.limit:,.2f}"
        share = "100%+" if self.ratio == float("inf") else f"{self.ratio:.0%}"
        period = "daily" if self.period == "day" else "monthly"
        return f"{period} {what}: {spent} of {limit} ({share})"


State = Literal["ok", "warn", "blocked"]


@dataclass(frozen=True)
class BudgetCheck:
    state: State
    spend: Spend
    uses: tuple[LimitUse, ...]
    # For the person asking, when blocked.
    notice_for_people: str | None
    # For the admins' approval channel; set only by the check that first reached this
    # level in this period, so it is posted once.
    admin_notice: str | None

    def status_line(self) -> str:
        """For /agent status."""
        spend = (
            f"today {self.spend.day_tokens:,} tokens / ${self.spend.day_usd:,.2f}, "
            f"this month {self.spend.month_tokens:,} tokens / ${self.spend.month_usd:,.2f}"
        )
        if not self.uses:
            return f"LLM spend: {spend} (no budget set)"
        return f"LLM spend: {spend}; budget {self.state}: " + "; ".join(
            u.describe() for u in self.uses
        )


class BudgetExceeded(Exception):
    """A model call was refused because the tenant's budget is used up."""

    def __init__(self, check: BudgetCheck) -> None:
        super().__init__(check.notice_for_people or "budget exceeded")
        self.check = check

    @property
    def notice(self) -> str:
        return self.check.notice_for_people or "The AI budget is used up."


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BudgetGuard:
    pool: Pool
    policies: PolicyStore
    warn_ratio: float = DEFAULT_WARN_RATIO
    clock: Callable[[], datetime] = _utc_now

    def check(self, tenant_id: int, *, record_notice: bool = True) -> BudgetCheck:
        """Where the tenant stands. With `record_notice` (before a model call), the first
        check to reach a level in a period records it and returns the admin notice; a
        status display passes False so it never swallows that notice."""
        budgets = self.policies.load(tenant_id).budgets
        day_start, month_start = periods(self.clock())
        spend = self.spend(tenant_id, day_start, month_start)
        state, uses = evaluate(budgets, spend, self.warn_ratio)
        admin_notice = (
            self._first_notice(tenant_id, uses, day_start, month_start) if record_notice else None
        )
        notice = None
        if state == "blocked":
            worst = max(uses, key=lambda u: u.ratio)
            until = "tomorrow (UTC)" if worst.period == "day" else "next month"
            notice = (
                ":no_entry: This workspace has used its AI budget "
                f"({worst.describe()}), so I can't answer until {until}. "
                "An admin can raise the budget."
            )
        return BudgetCheck(state, spend, uses, notice, admin_notice)

    def require(self, tenant_id: int) -> BudgetCheck:
        """`check`, raising BudgetExceeded when the budget is used up."""
        result = self.check(tenant_id)
        if result.state == "blocked":
            log.warning("guardrails.budget_blocked", tenant_id=tenant_id)
            raise BudgetExceeded(result)
        return result

    def spend(self, tenant_id: int, day_start: date, month_start: date) -> Spend:
        with self.pool.connection() as conn:
            row = conn.execute(
                SPEND_SQL, spend_params(tenant_id, day_start, month_start)
            ).fetchone()
        assert row is not None
        return spend_from_row(row)

    def _first_notice(
        self, tenant_id: int, uses: Sequence[LimitUse], day_start: date, month_start: date
    ) -> str | None:
        lines = []
        for use in uses:
            level = _level(use, self.warn_ratio)
            if level is None:
                continue
            start = day_start if use.period == "day" else month_start
            with self.pool.connection() as conn:
                inserted = conn.execute(
                    """INSERT INTO budget_notices (tenant_id, period, period_start, level)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT DO NOTHING RETURNING level""",
                    (tenant_id, use.period, start, level),
                ).fetchone()
            if inserted is None:
                continue
            if level == "blocked":
                lines.append(
                    f":no_entry: AI budget used up, requests are refused: {use.describe()}"
                )
            else:
                lines.append(f":warning: AI budget at {use.ratio:.0%}: {use.describe()}")
        return "\n".join(lines) or None


SPEND_SQL = """SELECT
     coalesce(sum(prompt_tokens + completion_tokens)
              FILTER (WHERE created_at >= %(day)s), 0) AS day_tokens,
     coalesce(sum(cost_usd) FILTER (WHERE created_at >= %(day)s), 0) AS day_usd,
     coalesce(sum(prompt_tokens + completion_tokens), 0) AS month_tokens,
     coalesce(sum(cost_usd), 0) AS month_usd
   FROM llm_usage
   WHERE tenant_id = %(tenant)s AND created_at >= %(month)s"""


def spend_params(tenant_id: int, day_start: date, month_start: date) -> dict[str, Any]:
    return {
        "tenant": tenant_id,
        "day": datetime.combine(day_start, datetime.min.time(), UTC),
        "month": datetime.combine(month_start, datetime.min.time(), UTC),
    }


def spend_from_row(row: Mapping[str, Any]) -> Spend:
    return Spend(
        day_tokens=int(row["day_tokens"]),
        day_usd=Decimal(row["day_usd"]),
        month_tokens=int(row["month_tokens"]),
        month_usd=Decimal(row["month_usd"]),
    )


def periods(now: datetime) -> tuple[date, date]:
    """The UTC day and calendar month `now` falls in, as their first days."""
    day = now.astimezone(UTC).date()
    return day, day.replace(day=1)


def evaluate(
    budgets: BudgetPolicy, spend: Spend, warn_ratio: float
) -> tuple[State, tuple[LimitUse, ...]]:
    uses = _uses(budgets, spend)
    return _state(uses, warn_ratio), uses


def _uses(budgets: BudgetPolicy, spend: Spend) -> tuple[LimitUse, ...]:
    candidates: list[tuple[Literal["day", "month"], Literal["tokens", "usd"], Any, Any]] = [
        ("day", "tokens", spend.day_tokens, budgets.daily_tokens),
        ("day", "usd", spend.day_usd, budgets.daily_usd),
        ("month", "tokens", spend.month_tokens, budgets.monthly_tokens),
        ("month", "usd", spend.month_usd, budgets.monthly_usd),
    ]
    return tuple(
        LimitUse(period, measure, Decimal(spent), Decimal(limit))
        for period, measure, spent, limit in candidates
        if limit is not None
    )


def _level(use: LimitUse, warn_ratio: float) -> Literal["warn", "blocked"] | None:
    if use.ratio >= 1:
        return "blocked"
    if use.ratio >= warn_ratio:
        return "warn"
    return None


def _state(uses: Sequence[LimitUse], warn_ratio: float) -> State:
    levels = {_level(u, warn_ratio) for u in uses}
    if "blocked" in levels:
        return "blocked"
    return "warn" if "warn" in levels else "ok"
