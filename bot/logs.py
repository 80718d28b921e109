"""structlog configuration: JSON lines for machines, console rendering for humans."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from guardrails.log_redaction import redact_pii

# Keys whose values are never written to a log, whatever the call site passes.
SECRET_KEYS = frozenset({"token", "bot_token", "api_key", "signing_secret", "password", "secret"})


def drop_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A processor that masks values of secret-looking keys."""
    for key in event_dict:
        if key in SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(*, fmt: str = "json", level: str = "info") -> None:
    """Called once by each process's entry point, before anything logs."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_secrets,
            structlog.processors.format_exc_info,
            redact_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries (slack_bolt, dramatiq, psycopg) log through the standard library; send
    # their warnings to the same stream so nothing goes missing.
    logging.basicConfig(stream=sys.stdout, level=max(numeric_level, logging.WARNING), force=True)
