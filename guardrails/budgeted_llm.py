"""A model client that checks the tenant's budget (guardrails/budgets.py) before every
call. Apart from budgets.py so that what reads budgets (the listeners' /agent status)
does not import the model clients (openai: a third of a second) to do so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.llm.structured import StructuredLLM
from guardrails.budgets import BudgetExceeded, BudgetGuard


@dataclass
class BudgetedLLM(StructuredLLM):
    """A StructuredLLM that checks the tenant's budget before every call, so the loop
    needs no change beyond catching BudgetExceeded. Build one per request."""

    guard: BudgetGuard
    tenant_id: int
    notify_admins: Callable[[str], None]

    def before_call(self) -> None:
        check = self.guard.check(self.tenant_id)
        if check.admin_notice:
            self.notify_admins(check.admin_notice)
        if check.state == "blocked":
            raise BudgetExceeded(check)
