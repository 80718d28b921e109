"""Budgets: spend read from llm_usage, a warning to admins once per period at 80%, and
no model call at 100%, shown against the real OpenAI emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from pydantic import BaseModel

from core.db import Pool
from core.llm.providers import build_chain
from core.llm.tools import ToolSpec
from guardrails.budgeted_llm import BudgetedLLM
from guardrails.budgets import BudgetExceeded, BudgetGuard
from guardrails.policy import BudgetPolicy, PolicyStore, TenantPolicy
from guardrails.status import budget_line, configured_lines
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from tests.guardrails.conftest import settings_for

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def spend(pool: Pool, tenant: int, tokens: int, usd: str, at: datetime = NOW) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO llm_usage (tenant_id, provider, model, purpose, outcome,
                 prompt_tokens, completion_tokens, cost_usd, latency_ms, created_at)
               VALUES (%s, 'primary', 'model-a', 'agent', 'ok', %s, 0, %s, 10, %s)""",
            (tenant, tokens, Decimal(usd), at),
        )


@pytest.fixture
def guard(pool: Pool) -> BudgetGuard:
    return BudgetGuard(pool, PolicyStore(pool, cache_seconds=0), warn_ratio=0.8, clock=lambda: NOW)


def budget(guard: BudgetGuard, tenant: int, **limits: object) -> None:
    guard.policies.save(tenant, TenantPolicy(budgets=BudgetPolicy(**limits)), updated_by="test")  # type: ignore[arg-type]


def test_spend_counts_today_and_this_month_only(
    guard: BudgetGuard, pool: Pool, tenant: int
) -> None:
    """Calls from earlier this month count for the month, not the day; last month's for
    neither."""
    spend(pool, tenant, 1_000, "0.50")
    spend(pool, tenant, 2_000, "1.00", at=datetime(2026, 3, 2, tzinfo=UTC))
    spend(pool, tenant, 9_000, "9.00", at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    check = guard.check(tenant)
    assert (check.spend.day_tokens, check.spend.month_tokens) == (1_000, 3_000)
    assert (check.spend.day_usd, check.spend.month_usd) == (Decimal("0.5"), Decimal("1.5"))
    assert check.state == "ok" and check.admin_notice is None
    assert check.status_line() == (
        "LLM spend: today 1,000 tokens / $0.50, this month 3,000 tokens / $1.50 (no budget set)"
    )


def test_admins_are_warned_once_at_80_percent(guard: BudgetGuard, pool: Pool, tenant: int) -> None:
    """Crossing 80% of the daily cost budget yields one admin notice, even if a status
    display looked first; later checks the same day stay at warn without repeating it."""
    budget(guard, tenant, daily_usd=Decimal("10"))
    spend(pool, tenant, 100, "8.50")
    shown = guard.check(tenant, record_notice=False)  # /agent status looking first
    assert shown.state == "warn" and shown.admin_notice is None
    first = guard.check(tenant)
    assert first.state == "warn"
    assert first.admin_notice == ":warning: AI budget at 85%: daily USD: 8.50 of 10.00 (85%)"
    spend(pool, tenant, 100, "0.10")
    second = guard.check(tenant)
    assert second.state == "warn" and second.admin_notice is None


def test_at_100_percent_no_model_call_is_made(
    guard: BudgetGuard, pool: Pool, tenant: int, llm: OpenAIEmulator
) -> None:
    """With the monthly token budget used up, asking refuses with a notice for the
    person and the emulator receives no request."""
    budget(guard, tenant, monthly_tokens=5_000)
    spend(pool, tenant, 5_000, "0")
    llm.script(Reply(content={"answer": "should not be asked"}))
    chain = build_chain(
        [("primary", llm.base_url, "key", "model-a")],
        timeout=5.0,
        max_retries=0,
        circuit_failures=5,
        circuit_reset=60.0,
    )
    notices: list[str] = []
    budgeted = BudgetedLLM(chain, 0, guard=guard, tenant_id=tenant, notify_admins=notices.append)

    class Answer(BaseModel):
        answer: str

    with pytest.raises(BudgetExceeded) as refused:
        budgeted.ask(Answer, [{"role": "user", "content": "hi"}], on_call=lambda _r: None)
    assert refused.value.notice.startswith(":no_entry: This workspace has used its AI budget")
    assert "until next month" in refused.value.notice
    assert llm.requests() == []
    assert notices == [
        ":no_entry: AI budget used up, requests are refused: monthly tokens: 5,000 of 5,000 (100%)"
    ]
    # A tool turn is held to the same budget.
    search = ToolSpec("search", "Search.", {"type": "object"})
    with pytest.raises(BudgetExceeded):
        budgeted.tool_turn([{"role": "user", "content": "hi"}], [search], on_call=lambda _r: None)
    assert llm.requests() == []


def test_agent_status_lines_for_the_async_listener(
    guard: BudgetGuard, pool: Pool, database_url: str, tenant: int
) -> None:
    """/agent status gets the configured checks from settings and the spend against the
    budget through an async connection, without using up the admins' notice."""
    budget(guard, tenant, daily_tokens=1_000)
    spend(pool, tenant, 900, "0.25", at=datetime.now(UTC))

    async def read() -> str:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await budget_line(conn, tenant, warn_ratio=0.8)

    assert asyncio.run(read()) == (
        "LLM spend: today 900 tokens / $0.25, this month 900 tokens / $0.25; "
        "budget warn: daily tokens: 900 of 1,000 (90%)"
    )
    live = BudgetGuard(pool, guard.policies, warn_ratio=0.8)  # today's clock, as the worker's
    assert live.check(tenant).admin_notice is not None  # still there for the real check
    assert configured_lines(settings_for(database_url)) == [
        "toxicity: off (no model configured: set GUARDRAILS_TOXICITY_MODEL)",
        "injection classifier: off (heuristics only; set GUARDRAILS_INJECTION_MODEL to add "
        "a classifier)",
        "pii vault: encrypted, key GUARDRAILS_VAULT_KEY",
    ]
