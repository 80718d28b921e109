"""The jobs the listeners enqueue and the workers run.

Listeners only need to *send* a job, so they build the message from the names below and
never import the worker's code; `bot.worker` declares the actors with the same names.
"""

from __future__ import annotations

import dramatiq

AGENT_QUEUE = "agent"
RUN_REQUEST = "run_request"
REQUEST_FAILED = "request_failed"

# A reply that arrives an hour late is worse than an apology, so retries are few and quick.
RUN_REQUEST_OPTIONS = {
    "max_retries": 3,
    "min_backoff": 1_000,  # ms
    "max_backoff": 15_000,  # ms
    "time_limit": 180_000,  # ms
    "on_retry_exhausted": REQUEST_FAILED,
}


def enqueue_request(broker: dramatiq.Broker, request_id: int) -> None:
    """Queue an inbound request for the agent loop."""
    broker.enqueue(
        dramatiq.Message(
            queue_name=AGENT_QUEUE,
            actor_name=RUN_REQUEST,
            args=(request_id,),
            kwargs={},
            options={},
        )
    )
