"""The workers' scheduler: each periodic task runs once per due time, however many
workers there are, never twice at once, and a task that fails is tried again next time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot.queue.scheduler import PeriodicTask, Scheduler, daily_at, every
from core.db import Pool, open_pool
from testbed.markers import new_marker

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def pools(database_url: str) -> Iterator[list[Pool]]:
    """Two workers' pools on the session database."""
    opened = [open_pool(database_url, max_size=4) for _ in range(2)]
    yield opened
    for pool in opened:
        pool.close()


def make_due(db: DB, name: str) -> None:
    db.execute(
        "UPDATE periodic_tasks SET next_run_at = now() - interval '1 second' WHERE name = %s",
        (name,),
    )


def in_threads(calls: list[Callable[[], object]]) -> None:
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_a_due_task_runs_once_however_many_workers_look(pools: list[Pool], db: DB) -> None:
    """Two workers asking ten times each, at the same moment, run a due task once; its
    next due time moves a period ahead."""
    runs: list[str] = []
    task = PeriodicTask(
        f"test-once-{new_marker(8)}", lambda: runs.append("ran"), every(timedelta(hours=1))
    )
    schedulers = [Scheduler(pool, [task]) for pool in pools]
    for scheduler in schedulers:
        assert scheduler.run_due()[0] == []  # scheduled an hour ahead: not due yet
    make_due(db, task.name)

    in_threads([lambda s=s: [s.run_due() for _ in range(10)] for s in schedulers])

    assert runs == ["ran"]
    row = db.execute(
        "SELECT next_run_at - now() AS ahead, runs, last_error FROM periodic_tasks WHERE name = %s",
        (task.name,),
    ).fetchone()
    assert row is not None
    assert timedelta(minutes=59) < row["ahead"] <= timedelta(hours=1)
    assert row["runs"] == 1 and row["last_error"] is None


def test_a_slow_task_never_runs_twice_at_once(pools: list[Pool]) -> None:
    """A task that takes longer than its period is skipped by the other worker while it
    runs, rather than run alongside."""
    running, most = 0, 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.5)
        with lock:
            running -= 1

    task = PeriodicTask(f"test-slow-{new_marker(8)}", slow, every(timedelta(0)))
    schedulers = [Scheduler(pool, [task]) for pool in pools]

    in_threads([lambda s=s: [s.run_due() for _ in range(4)] for s in schedulers])

    assert most == 1


def test_a_failing_task_is_recorded_and_runs_again_when_due(pools: list[Pool], db: DB) -> None:
    """The error is kept on the task's row for operators; the next due time still comes."""
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("Slack said no")

    task = PeriodicTask(f"test-flaky-{new_marker(8)}", flaky, every(timedelta(hours=1)))
    scheduler = Scheduler(pools[0], [task])
    scheduler.run_due()
    make_due(db, task.name)
    scheduler.run_due()
    row = db.execute(
        "SELECT last_error FROM periodic_tasks WHERE name = %s", (task.name,)
    ).fetchone()
    assert row == {"last_error": "RuntimeError: Slack said no"}

    make_due(db, task.name)
    scheduler.run_due()

    assert len(attempts) == 2
    row = db.execute(
        "SELECT last_error FROM periodic_tasks WHERE name = %s", (task.name,)
    ).fetchone()
    assert row == {"last_error": None}


def test_daily_at_is_the_next_time_of_day_in_the_zone() -> None:
    """A digest at 09:00 in Paris: later the same day before nine, the next day after,
    whatever the offset that day (winter UTC+1, summer UTC+2)."""
    nine_in_paris = daily_at(time_of_day(9, 0), ZoneInfo("Europe/Paris"))

    winter_morning = datetime(2026, 1, 15, 7, 30, tzinfo=UTC)  # 08:30 in Paris
    summer_evening = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)  # 20:00 in Paris

    assert nine_in_paris(winter_morning) == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert nine_in_paris(summer_evening) == datetime(2026, 7, 16, 7, 0, tzinfo=UTC)


def test_two_tasks_with_one_name_are_refused(pools: list[Pool]) -> None:
    """Names are the tasks' identity across workers, so they must be unique."""
    task = PeriodicTask("test-duplicate", lambda: None, every(timedelta(minutes=1)))
    with pytest.raises(ValueError, match="share a name"):
        Scheduler(pools[0], [task, task])
