"""Periodic work, run by the workers: each task once per due time, across all of them.

Every worker process runs one `Scheduler` thread. A task is a name, a function, and a
`next_run` function saying when it is due again (`every(period)`, `daily_at(...)`). Its
schedule is one row of `periodic_tasks`; a worker runs a due task only after moving that
row's `next_run_at` forward with one conditional UPDATE, so with N workers each due time
is taken by exactly one of them, and a session advisory lock held while it runs keeps a
slow run from overlapping the next. Workers always run, whatever listeners are deployed
(HTTP, Socket Mode, SMTP), so periodic work never depends on which of those exist.

Tasks run one after another on the scheduler's thread: keep them short, and hand long
work to the queue as jobs. To add one, give it a unique name and list it in
`bot/queue/periodic.py`. Work due at a time of day in each workspace's own time zone (a
daily digest) is one task, run every few minutes, that picks the workspaces whose local
time has come and records what it sent, rather than a task per workspace.
"""

from __future__ import annotations

import os
import socket
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog

from core.db import Conn, Pool

log = structlog.get_logger(__name__)

NextRun = Callable[[datetime], datetime]  # the time a task is next due, after "now"
LOCK_NAMESPACE = 0x70  # high bits of the advisory lock keys of periodic tasks
MAX_SLEEP = 5.0  # seconds between two looks at the schedule, at most
ERROR_PAUSE = 5.0  # seconds to wait after the schedule could not be read (database down)


@dataclass(frozen=True)
class PeriodicTask:
    name: str  # unique; the key of its row in periodic_tasks
    run: Callable[[], object]
    next_run: NextRun


def every(period: timedelta) -> NextRun:
    """Due ``period`` after each run."""
    return lambda now: now + period


def daily_at(at: time, zone: ZoneInfo) -> NextRun:
    """Due once a day at ``at`` in ``zone`` (e.g. a digest at 09:00 Europe/Paris)."""

    def next_run(now: datetime) -> datetime:
        local = now.astimezone(zone)
        due = datetime.combine(local.date(), at, tzinfo=zone)
        if due <= local:
            due = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
        return due

    return next_run


SCHEDULE = """
    INSERT INTO periodic_tasks (name, next_run_at) VALUES (%s, %s)
    ON CONFLICT (name) DO UPDATE
      -- A schedule changed by a deploy (a shorter period) takes effect now, not after the
      -- old, later due time.
      SET next_run_at = LEAST(periodic_tasks.next_run_at, EXCLUDED.next_run_at)
"""
DUE = """
    SELECT name, next_run_at <= now() AS due, extract(epoch FROM next_run_at - now()) AS wait
    FROM periodic_tasks WHERE name = ANY(%s)
"""
CLAIM = """
    UPDATE periodic_tasks
    SET next_run_at = %(next)s, last_started_at = now(), last_worker = %(worker)s,
        runs = runs + 1
    WHERE name = %(name)s AND next_run_at <= %(now)s
    RETURNING name
"""
FINISHED = """
    UPDATE periodic_tasks SET last_finished_at = now(), last_error = %s WHERE name = %s
"""


class Scheduler:
    """Runs `tasks` from a thread of this process, each once per due time across every
    process running a Scheduler on the same database."""

    def __init__(self, pool: Pool, tasks: Sequence[PeriodicTask], *, max_sleep: float = MAX_SLEEP):
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            raise ValueError("two periodic tasks share a name")
        self.pool = pool
        self.tasks = {task.name: task for task in tasks}
        self.max_sleep = max_sleep
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduled = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the task running now, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_due(self) -> tuple[list[str], float]:
        """Run every task that is due and that no other worker took first; returns the
        names run and the seconds until the next one is due."""
        if not self._scheduled:
            self._schedule()
        with self.pool.connection() as conn:
            rows = conn.execute(DUE, (list(self.tasks),)).fetchall()
        ran = [row["name"] for row in rows if row["due"] and self._run_if_claimed(row["name"])]
        waits = [float(row["wait"]) for row in rows if not row["due"]]
        return ran, min(waits, default=self.max_sleep)

    def _schedule(self) -> None:
        with self.pool.connection() as conn:
            now = _now(conn)
            for task in self.tasks.values():
                conn.execute(SCHEDULE, (task.name, task.next_run(now)))
        self._scheduled = True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran, wait = self.run_due()
            except Exception:
                # The database is down or restarting: the schedule waits for it.
                log.warning("scheduler.unavailable", exc_info=True)
                self._stop.wait(ERROR_PAUSE)
                continue
            if ran:
                continue  # something else may have come due meanwhile
            self._stop.wait(min(max(wait, 0.05), self.max_sleep))

    def _run_if_claimed(self, name: str) -> bool:
        task = self.tasks[name]
        key = (LOCK_NAMESPACE << 47) | zlib.crc32(name.encode())
        with self.pool.connection() as conn:
            locked = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
            if not (locked and locked["ok"]):
                return False  # still running elsewhere: this due time is skipped
            try:
                now = _now(conn)
                claimed = conn.execute(
                    CLAIM,
                    {"name": name, "now": now, "next": task.next_run(now), "worker": self.worker},
                ).fetchone()
                if claimed is None:
                    return False  # another worker took this due time
                error = None
                try:
                    task.run()
                except Exception as exc:
                    log.exception("scheduler.task_failed", task=name)
                    error = f"{type(exc).__name__}: {exc}"[:500]
                conn.execute(FINISHED, (error, name))
                return True
            finally:
                if not conn.broken:  # a dead session holds no locks
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _now(conn: Conn) -> datetime:
    # The database's clock, the same for every worker, decides what is due.
    row = conn.execute("SELECT now() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now
