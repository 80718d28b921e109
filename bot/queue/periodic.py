"""The product's periodic work, run by the workers' scheduler (bot/queue/scheduler.py).

- `stranded_requests`: requests stored but never queued, or whose job the queue lost,
  are queued again (bot/queue/stranded.py).
- `pending_actions`: approvals relayed to execution (and executions whose job was
  lost), decided actions' resumes relayed, actions announced once an approval channel
  exists, reminders, expiry (review/sweep.py).
- `vault_purge`: personal data behind placeholders older than the retention is deleted.
- `summary_digests`: scheduled channel summaries whose time has come in their
  workspace's time zone are claimed, each due time once, and queued to be written and
  posted (bot/summaries/digests.py).
- `read_history_purge`: channel messages stored for summaries (bot/summaries/reading.py)
  are deleted once older than 30 days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import dramatiq
import structlog

from bot.agent.runs import WorkerDeps
from bot.queue.census import queued_jobs
from bot.queue.jobs import enqueue_digest, enqueue_resume
from bot.queue.scheduler import PeriodicTask, every
from bot.queue.stranded import requeue_stranded
from bot.summaries.digests import claim_due_digests
from bot.summaries.reading import forget_old_reads
from core.settings import Settings
from review.sweep import LostJobs, sweep

log = structlog.get_logger(__name__)


def periodic_tasks(
    settings: Settings,
    deps: WorkerDeps,
    broker: dramatiq.Broker,
    enqueue_execution: Callable[[int], None],
) -> list[PeriodicTask]:
    sweep_every = every(timedelta(seconds=settings.sweep_interval_seconds))
    stranded_after = timedelta(seconds=settings.stranded_after_seconds)

    def stranded_requests() -> None:
        with deps.pool.connection() as conn:
            requeue_stranded(conn, broker, after=stranded_after)

    def queued_executions() -> frozenset[int] | None:
        census = queued_jobs(broker)
        return census.actions if census is not None else None

    def pending_actions() -> None:
        lost = LostJobs(stranded_after, queued_executions)
        with deps.pool.connection() as conn:
            sweep(
                conn,
                deps.slack_client,
                enqueue_execution,
                lost=lost,
                enqueue_resume=lambda action_id: enqueue_resume(broker, action_id, None),
            )

    def vault_purge() -> None:
        # Kept only as long as the tenant needs it (GUARDRAILS_VAULT_RETENTION_DAYS).
        forgotten = deps.guardrails.vault.purge(deps.vault_retention)
        if forgotten:
            log.info("guardrails.vault_purged", placeholders=forgotten)

    def read_history_purge() -> None:
        # Channel messages stored for summaries are kept no longer than they are useful.
        with deps.pool.connection() as conn:
            forgotten = forget_old_reads(conn)
        if forgotten:
            log.info("summary.reads_forgotten", messages=forgotten)

    def summary_digests() -> None:
        # Claimed here, written by a job: the model calls never hold up the sweeps.
        with deps.pool.connection() as conn:
            claim_due_digests(conn, lambda digest_id, due: enqueue_digest(broker, digest_id, due))

    return [
        PeriodicTask("stranded_requests", stranded_requests, sweep_every),
        PeriodicTask("pending_actions", pending_actions, sweep_every),
        # One indexed DELETE, so as often as the sweeps.
        PeriodicTask("vault_purge", vault_purge, sweep_every),
        # Due at a minute of the day: looked for as often as the sweeps run.
        PeriodicTask("summary_digests", summary_digests, sweep_every),
        PeriodicTask("read_history_purge", read_history_purge, every(timedelta(hours=1))),
    ]
