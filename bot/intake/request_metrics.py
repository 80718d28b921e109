"""Which Slack request a delivery is, and counting and timing its ack, for both ways in:
the HTTP listener (bot/intake/http_server.py) and Socket Mode (bot/intake/socket_mode.py).
"""

from __future__ import annotations

import time
from typing import Any

from bot.intake.slack_app import SUBSCRIBED_EVENTS
from core.metrics import Metrics

# Request types counted by name; anything else (a forged or new type) counts as "other",
# so a sender cannot grow the label set.
KNOWN_REQUEST_TYPES = frozenset(
    {*SUBSCRIBED_EVENTS, "url_verification", "block_actions", "view_submission", "slash_command"}
)


def slack_request_type(body: dict[str, Any]) -> str:
    """The event type of an Events API callback, else the kind of request."""
    if body.get("type") == "event_callback":
        name = str((body.get("event") or {}).get("type"))
    elif "command" in body:
        name = "slash_command"
    else:
        name = str(body.get("type"))
    return name if name in KNOWN_REQUEST_TYPES else "other"


def count_received(metrics: Metrics, request_type: str) -> float:
    """Count a request as it arrives; returns the clock reading `count_acked` wants."""
    metrics.slack_events_received.labels(request_type).inc()
    return time.monotonic()


def count_acked(metrics: Metrics, request_type: str, status: int, received_at: float) -> None:
    metrics.slack_events_acked.labels(request_type, str(status)).inc()
    metrics.slack_ack_seconds.labels(request_type).observe(time.monotonic() - received_at)
