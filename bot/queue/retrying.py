"""Trying a job again after a failure that passes by itself, no sooner than it may pass.

Dramatiq retries any failed job with exponential backoff. For failures that are only a
matter of waiting (the database restarting, Slack rate-limiting us) a job raises
`dramatiq.Retry` instead: no traceback in the logs for an expected outage, and a delay
that is never shorter than the Retry-After Slack asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from connectors.slack.web_client import retry_after

log = structlog.get_logger(__name__)


def current_retries() -> int:
    """How many times the running job was tried before (0 on its first try). Needs the
    `CurrentMessage` middleware, which `bot.queue.worker` installs."""
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


def retry_delay(exc: BaseException, retries: int, options: dict[str, Any]) -> int:
    """Milliseconds to wait before the next try: the job's exponential backoff, or what
    Slack asked for if that is longer."""
    backoff = min(options["max_backoff"], options["min_backoff"] * 2**retries)
    asked = retry_after(exc)
    return int(max(backoff, asked * 1000 if asked is not None else 0))


@contextmanager
def retry_when(passes: Callable[[BaseException], bool], options: dict[str, Any]) -> Iterator[None]:
    """Turn a failure for which ``passes`` is true into a quiet, well-timed retry."""
    try:
        yield
    except dramatiq.Retry:
        raise
    except Exception as exc:
        if not passes(exc):
            raise
        retries = current_retries()
        delay = retry_delay(exc, retries, options)
        log.warning(
            "job.retry_later", error=type(exc).__name__, detail=str(exc)[:200], delay_ms=delay
        )
        raise dramatiq.Retry(f"{type(exc).__name__}: retrying in {delay} ms", delay=delay) from exc
