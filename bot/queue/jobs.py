"""The jobs the listeners enqueue and the workers run.

Listeners only need to *send* a job, so they build the message from the names below and
never import the worker's code; `bot.queue.worker` declares the actors with the same
names. Two queues, so approvals are not stuck behind slow LLM runs.
"""

from __future__ import annotations

from typing import Any

import dramatiq

AGENT_QUEUE = "agent"
REVIEW_QUEUE = "review"

RUN_REQUEST = "run_request"
REQUEST_FAILED = "request_failed"
REVIEW_EVENT = "review_event"
EXECUTE_ACTION = "execute_action"
SWEEP_ACTIONS = "sweep_actions"

# Stored request kinds that are decisions on pending actions rather than questions.
REVIEW_KINDS = frozenset(
    {"reaction_added", "reaction_removed", "review_button", "review_edit", "approval_reply"}
)

# A reply that arrives an hour late is worse than an apology, so retries are few and quick.
RUN_REQUEST_OPTIONS: dict[str, Any] = {
    "max_retries": 3,
    "min_backoff": 1_000,  # ms
    "max_backoff": 15_000,  # ms
    "time_limit": 180_000,  # ms
    "on_retry_exhausted": REQUEST_FAILED,
}
REVIEW_OPTIONS: dict[str, Any] = {
    "max_retries": 5,
    "min_backoff": 500,  # ms
    "max_backoff": 30_000,  # ms
    "time_limit": 60_000,  # ms
}


def enqueue_request(broker: dramatiq.Broker, request_id: int, kind: str) -> None:
    """Queue a stored inbound request for the job that handles its kind."""
    if kind in REVIEW_KINDS:
        _send(broker, REVIEW_QUEUE, REVIEW_EVENT, request_id)
    else:
        _send(broker, AGENT_QUEUE, RUN_REQUEST, request_id)


def enqueue_execution(broker: dramatiq.Broker, action_id: int) -> None:
    _send(broker, REVIEW_QUEUE, EXECUTE_ACTION, action_id)


def enqueue_sweep(broker: dramatiq.Broker) -> None:
    _send(broker, REVIEW_QUEUE, SWEEP_ACTIONS)


def _send(broker: dramatiq.Broker, queue: str, actor: str, *args: int) -> None:
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})
    )
