"""The jobs the listeners enqueue and the workers run.

Listeners only need to *send* a job, so they build the message from the names below and
never import the worker's code; `bot.queue.worker` declares the actors with the same
names. Two queues, so approvals are not stuck behind slow LLM runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from bot.observability.tracing import TRACE_OPTION, current_trace_carrier
from core.correlation import MESSAGE_OPTION
from core.queues import AGENT_QUEUE, REVIEW_QUEUE

RUN_REQUEST = "run_request"
REQUEST_FAILED = "request_failed"
REVIEW_EVENT = "review_event"
EXECUTE_ACTION = "execute_action"
RESUME_RUN = "resume_run"  # a decided action's run continues (bot/agent/resume.py)
RESUME_FAILED = "resume_failed"
SWEEP_ACTIONS = "sweep_actions"  # sent by listeners of earlier releases only
SEND_DIGEST = "send_digest"  # a scheduled summary whose time has come (bot/summaries/digests.py)

# Stored request kinds that are decisions on pending actions rather than questions.
REVIEW_KINDS = frozenset(
    {
        "reaction_added",
        "reaction_removed",
        "review_button",
        "review_edit",
        "review_reject",
        "approval_reply",
        "digest_release",  # the flood digest card's button (review/email_digest.py)
        "golden_case",  # `/agent feedback`'s "Make a golden case" (review/golden_cases.py)
    }
)

# A reply that arrives an hour late is worse than an apology, so retries are few and quick.
RUN_REQUEST_OPTIONS: dict[str, Any] = {
    "max_retries": 3,
    "min_backoff": 1_000,  # ms
    "max_backoff": 15_000,  # ms
    "time_limit": 180_000,  # ms
    "on_retry_exhausted": REQUEST_FAILED,
}
# The apology after a run's retries ran out: tried until the database and Slack take it
# (a restart, a rate-limit storm), about four minutes in all, then recorded as failed.
APOLOGY_OPTIONS: dict[str, Any] = {
    "max_retries": 7,
    "min_backoff": 2_000,  # ms
    "max_backoff": 60_000,  # ms
    "time_limit": 60_000,  # ms
}
# A resumed run is retried as a run is; when its retries run out the person already has
# the action's outcome in the thread, so there is no apology: the run is marked failed.
RESUME_OPTIONS: dict[str, Any] = {**RUN_REQUEST_OPTIONS, "on_retry_exhausted": RESUME_FAILED}
# A digest is written like an answer; a few quick retries, then that due time is skipped
# (the next one reads from the last digest sent, so nothing said is left out).
DIGEST_OPTIONS: dict[str, Any] = {
    "max_retries": 3,
    "min_backoff": 5_000,  # ms
    "max_backoff": 60_000,  # ms
    "time_limit": 300_000,  # ms: a long channel is several model calls
}
REVIEW_OPTIONS: dict[str, Any] = {
    "max_retries": 5,
    "min_backoff": 500,  # ms
    "max_backoff": 30_000,  # ms
    "time_limit": 60_000,  # ms
}


# How a listener queues a stored request: (request id, kind, correlation id or None).
Enqueue = Callable[[int, str, str | None], None]


def enqueue_request(
    broker: dramatiq.Broker, request_id: int, kind: str, correlation_id: str | None
) -> None:
    """Queue a stored inbound request for the job that handles its kind."""
    if kind in REVIEW_KINDS:
        _send(broker, REVIEW_QUEUE, REVIEW_EVENT, correlation_id, request_id)
    else:
        _send(broker, AGENT_QUEUE, RUN_REQUEST, correlation_id, request_id)


def enqueue_execution(broker: dramatiq.Broker, action_id: int, correlation_id: str | None) -> None:
    _send(broker, REVIEW_QUEUE, EXECUTE_ACTION, correlation_id, action_id)


def enqueue_resume(broker: dramatiq.Broker, action_id: int, correlation_id: str | None) -> None:
    """Queue the run that continues after ``action_id`` was decided (review/resumes.py)."""
    _send(broker, AGENT_QUEUE, RESUME_RUN, correlation_id, action_id)


def enqueue_digest(broker: dramatiq.Broker, digest_id: int, due_micros: int) -> None:
    """Queue the writing of digest ``digest_id`` for its due time (Unix microseconds)."""
    _send(broker, AGENT_QUEUE, SEND_DIGEST, None, digest_id, due_micros)


def _send(
    broker: dramatiq.Broker, queue: str, actor: str, correlation_id: str | None, *args: int
) -> None:
    # The correlation id and the trace context ride in the message's options, where the
    # worker's middleware picks them up for the job (bot/queue/middleware.py).
    options: dict[str, Any] = {MESSAGE_OPTION: correlation_id} if correlation_id else {}
    trace_carrier = current_trace_carrier()
    if trace_carrier:
        options[TRACE_OPTION] = trace_carrier
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options=options)
    )
