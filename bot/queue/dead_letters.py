"""Dead-lettered jobs on the Redis broker: listed for an operator, and sent back to their
queue on request (`chatops jobs dead`, `chatops jobs retry`).

A job lands here when it failed and its retries ran out (or it had none). Dramatiq keeps
it for 7 days in the sorted set `<ns>:<queue>.XQ` (scored by the time it died), its body
in the hash `<ns>:<queue>.XQ.msgs`. Re-running a job is safe in this product: every job
first checks the state in Postgres (a finished request or action is skipped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import redis

from core.correlation import MESSAGE_OPTION

# Options Dramatiq adds while a message fails; a replayed job starts without them.
FAILURE_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "eta", "redis_message_id"}
)


@dataclass(frozen=True)
class DeadJob:
    queue: str
    redis_id: str  # the broker's id for this delivery, the member of the .XQ set
    message_id: str  # Dramatiq's id, the one its logs print
    actor: str
    args: tuple[Any, ...]
    died_at: datetime
    retries: int
    error: str  # the last line of the traceback
    correlation_id: str | None
    body: bytes


def list_dead(client: redis.Redis, namespace: str, queues: Iterable[str]) -> list[DeadJob]:
    """Every dead job on these queues, oldest first."""
    jobs = []
    for queue in queues:
        xq = f"{namespace}:{queue}.XQ"
        # redis-py types its sync and async replies as one union; these are the sync ones.
        members = cast(list[tuple[bytes, float]], client.zrange(xq, 0, -1, withscores=True))
        if not members:
            continue
        bodies = cast(
            list[bytes | None], client.hmget(f"{xq}.msgs", [member for member, _ in members])
        )
        for (member, score), body in zip(members, bodies, strict=True):
            if body is not None:
                jobs.append(_dead_job(queue, member.decode(), score, body))
    return sorted(jobs, key=lambda job: job.died_at)


def retry_dead(client: redis.Redis, broker: dramatiq.Broker, namespace: str, job: DeadJob) -> None:
    """Queue the job again, as if new, then forget the dead copy. A crash in between can
    at worst run it twice, which every job tolerates."""
    dead = dramatiq.Message.decode(job.body)
    # A new message (copy() would merge the failure options back in), keeping its id so
    # the logs of both lives line up; its timestamp is now, so queue age stays honest.
    broker.enqueue(
        dramatiq.Message(
            queue_name=job.queue,
            actor_name=dead.actor_name,
            args=dead.args,
            kwargs=dead.kwargs,
            options={k: v for k, v in dead.options.items() if k not in FAILURE_OPTIONS},
            message_id=dead.message_id,
        )
    )
    xq = f"{namespace}:{job.queue}.XQ"
    client.zrem(xq, job.redis_id)
    client.hdel(f"{xq}.msgs", job.redis_id)


def _dead_job(queue: str, redis_id: str, score: float, body: bytes) -> DeadJob:
    message = dramatiq.Message.decode(body)
    traceback = str(message.options.get("traceback") or "").strip()
    return DeadJob(
        queue=queue,
        redis_id=redis_id,
        message_id=message.message_id,
        actor=message.actor_name,
        args=tuple(message.args),
        died_at=datetime.fromtimestamp(score / 1000, tz=UTC),
        retries=int(message.options.get("retries", 0)),
        error=traceback.splitlines()[-1] if traceback else "",
        correlation_id=message.options.get(MESSAGE_OPTION),
        body=body,
    )
