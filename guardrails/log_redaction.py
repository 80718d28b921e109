"""A structlog processor that keeps personal data and secrets out of logs.

Every string in an event (nested dicts and lists included, and the rendered exception)
is masked (<EMAIL>, <CARD>, <SECRET>...) before the line is written: logs are kept longer
and read by more people than anything else. The masking is guardrails/log_masks.py's
plain patterns, not the screen's presidio detector: every process logs, and most of them
never load presidio (seconds of start-up).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from guardrails.log_masks import mask

# Keys the logging machinery itself writes, and ids; none can hold personal data. A
# correlation id is a uuid4 we generate (core/correlation.py): its hex can look like an
# IBAN to the masks (about 1 in 2,000), and a masked one no longer finds its lines.
SKIP_KEYS = frozenset(
    {"timestamp", "level", "logger", "tenant_id", "request_id", "run_id", "correlation_id"}
)
MAX_DEPTH = 4  # nested containers deeper than this are replaced wholesale


def redact_pii(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The processor for bot/logs.py: put it after `format_exc_info`, before the renderer."""
    for key, value in event_dict.items():
        if key not in SKIP_KEYS:
            event_dict[key] = _clean(value, 0)
    return event_dict


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return mask(value)
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple | set):
        return "[nested too deep to screen]"
    if isinstance(value, dict):
        return {k: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v, depth + 1) for v in value]
    return value
