"""A structlog processor that keeps personal data out of logs.

Every string in an event (nested dicts and lists included, and the rendered exception)
goes through the same detector as model-bound text, with values replaced by plain
masks (<EMAIL>): logs are kept longer and read by more people than anything else.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from guardrails.redaction import Redactor

# Keys the logging machinery itself writes, and ids; none can hold personal data.
SKIP_KEYS = frozenset({"timestamp", "level", "logger", "tenant_id", "request_id", "run_id"})
MAX_DEPTH = 4  # nested containers deeper than this are replaced wholesale


@dataclass(frozen=True)
class PiiLogRedactor:
    redactor: Redactor

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if key not in SKIP_KEYS:
                event_dict[key] = self._clean(value, 0)
        return event_dict

    def _clean(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.redactor.mask(value)
        if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple | set):
            return "[nested too deep to screen]"
        if isinstance(value, dict):
            return {k: self._clean(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._clean(v, depth + 1) for v in value]
        return value


@functools.cache
def _default_processor() -> PiiLogRedactor:
    # Built on the first log line rather than at import, so importing costs nothing.
    from guardrails.pii import build_detector

    return PiiLogRedactor(Redactor(build_detector()))


def redact_pii(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The processor for bot/logs.py: put it after `format_exc_info`, before the renderer."""
    return _default_processor()(logger, method, event_dict)
