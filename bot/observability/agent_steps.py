"""What a worker observes about each agent step it computes: a span and a count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from core.metrics import Metrics


@dataclass(frozen=True)
class StepObserver:
    metrics: Metrics
    tracer: Tracer

    @contextmanager
    def computing(self, kind: str) -> Iterator[None]:
        """Around a step's work; replayed steps are not observed, as nothing runs."""
        with self.tracer.start_as_current_span(f"agent.{kind}", attributes={"agent.step": kind}):
            yield
        self.metrics.count_step(kind)

    @contextmanager
    def calling_tool(self, name: str) -> Iterator[None]:
        """Around one tool call of an Act step: run, proposed for approval, or refused."""
        with self.tracer.start_as_current_span("tool.call", attributes={"tool.name": name}):
            yield
