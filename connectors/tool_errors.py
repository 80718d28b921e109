"""How a connector's failure reaches the agent: as words it can explain, never a crash.

A read that fails returns `{"error": ...}` as its result, so the model can tell the user
what went wrong. An approved write that fails for good (a rejected token, a record that
is gone, invalid input) is refused with the same words, and the action is marked failed;
a transient failure (rate limit, outage) propagates, so the job retries and reconciles
first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from connectors.rest import ConnectorError
from core.tools import ActionRefused

log = structlog.get_logger(__name__)

T = TypeVar("T")


def read_result(tool: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except ConnectorError as exc:
        log.info("connector.read_failed", tool=tool, status=exc.status)
        return {"error": exc.message}


def write_result(tool: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ConnectorError as exc:
        log.info("connector.write_failed", tool=tool, status=exc.status, transient=exc.transient)
        if exc.transient:
            raise
        raise ActionRefused(exc.message) from exc
