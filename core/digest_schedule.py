"""When a scheduled summary (bot/summaries/digests.py) is next due.

In the kernel because the `/agent digest` console (review/console/digests.py) computes
the first due time when a digest is set up, and review may not import the bot.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Cadence = Literal["daily", "weekdays"]
CADENCES: tuple[Cadence, ...] = ("daily", "weekdays")


def next_due(now: datetime, at: time, zone: ZoneInfo, cadence: str) -> datetime:
    """The first time after ``now`` that is ``at`` o'clock in ``zone`` on a day the
    cadence covers (every day, or Monday to Friday)."""
    local = now.astimezone(zone)
    day: date = local.date()
    for _ in range(8):
        due = datetime.combine(day, at, tzinfo=zone)
        if due > local and (cadence == "daily" or day.weekday() < 5):
            return due
        day += timedelta(days=1)
    raise ValueError(f"no due time for cadence {cadence!r}")
