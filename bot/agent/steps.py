"""Each step of a run is written to Postgres as it completes.

A run retried after its worker died replays the steps already written instead of doing
them again, so it reaches the same answer without paying for the same LLM calls twice.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from bot.observability.agent_steps import StepObserver
from guardrails.at_rest import default_masker

Output = dict[str, Any]


class StepLimitReached(Exception):
    """The run used all its steps without finishing."""


class ReplayMismatch(Exception):
    """The stored steps do not follow the path the loop is taking now (a code change)."""


@dataclass
class StepLog:
    conn: Connection[dict[str, Any]]
    run_id: int
    tenant_id: int
    max_steps: int
    _stored: list[tuple[str, Output]] = field(default_factory=list)
    _position: int = 0
    # Wraps each step computed (not replayed): the worker's span and count per step.
    observer: StepObserver | None = None

    @classmethod
    def load(
        cls,
        conn: Connection[dict[str, Any]],
        run_id: int,
        tenant_id: int,
        max_steps: int,
        *,
        observer: StepObserver | None = None,
    ) -> StepLog:
        rows = conn.execute(
            "SELECT kind, output FROM agent_steps WHERE run_id = %s AND tenant_id = %s"
            " ORDER BY position",
            (run_id, tenant_id),
        ).fetchall()
        stored = [(r["kind"], r["output"]) for r in rows]
        return cls(conn, run_id, tenant_id, max_steps, stored, observer=observer)

    @property
    def replayed(self) -> int:
        return len(self._stored)

    def has_room(self, steps: int) -> bool:
        """Whether ``steps`` more counted steps fit in the run's limit."""
        return self._position + steps <= self.max_steps

    def tool_call(self, name: str) -> AbstractContextManager[None]:
        """Observe one tool call inside the step being computed (a span of its own)."""
        return nullcontext() if self.observer is None else self.observer.calling_tool(name)

    def step(self, kind: str, compute: Callable[[], Output], *, counted: bool = True) -> Output:
        """Return the stored output of this step, or compute, store and return it."""
        position = self._position
        if position < len(self._stored):
            stored_kind, output = self._stored[position]
            if stored_kind != kind:
                raise ReplayMismatch(f"step {position} was {stored_kind}, now {kind}")
            self._position += 1
            return output
        if counted and position >= self.max_steps:
            raise StepLimitReached(f"the run used all {self.max_steps} of its steps")
        if self.observer is None:
            output = compute()
        else:
            with self.observer.computing(kind):
                output = compute()
        # A tool's result (a ticket, a channel read) may hold a card number or a key:
        # stored masked for good (guardrails/at_rest.py), as everything else is.
        stored = default_masker().mask_deep(output)
        self.conn.execute(
            "INSERT INTO agent_steps (run_id, tenant_id, position, kind, output)"
            " VALUES (%s, %s, %s, %s, %s)",
            (self.run_id, self.tenant_id, position, kind, Jsonb(stored)),
        )
        self._position += 1
        return output
