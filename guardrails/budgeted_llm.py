"""A model client that checks the tenant's budget (guardrails/budgets.py) before every
call. Apart from budgets.py so that what reads budgets (the listeners' /agent status)
does not import the model clients (openai: a third of a second) to do so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from core.llm.providers import TextSink, UsageSink
from core.llm.structured import StructuredLLM
from core.llm.tools import ToolSpec, ToolTurn
from guardrails.budgets import BudgetExceeded, BudgetGuard

M = TypeVar("M", bound=BaseModel)


@dataclass
class BudgetedLLM(StructuredLLM):
    """A StructuredLLM that checks the tenant's budget before every call, so the loop
    needs no change beyond catching BudgetExceeded. Build one per request."""

    guard: BudgetGuard
    tenant_id: int
    notify_admins: Callable[[str], None]

    def ask(
        self,
        schema: type[M],
        messages: list[dict[str, Any]],
        *,
        on_call: UsageSink,
        on_text: TextSink | None = None,
        purpose: str = "default",
    ) -> M:
        self._check_budget()
        return super().ask(schema, messages, on_call=on_call, on_text=on_text, purpose=purpose)

    def tool_turn(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        on_call: UsageSink,
        purpose: str = "tool_turn",
        check_arguments: bool = True,
    ) -> ToolTurn:
        self._check_budget()
        return super().tool_turn(
            messages, tools, on_call=on_call, purpose=purpose, check_arguments=check_arguments
        )

    def _check_budget(self) -> None:
        check = self.guard.check(self.tenant_id)
        if check.admin_notice:
            self.notify_admins(check.admin_notice)
        if check.state == "blocked":
            raise BudgetExceeded(check)
