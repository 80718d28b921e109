"""What of a provider's error may be logged: its status and body, minus the request.

Servers quote requests back in their errors: pydantic's validation errors carry the
offending "input", proxies copy the body, our own emulator quotes the prompt's last
characters. Logs must never hold the prompt (it carries what people asked, documents,
email) nor the key, so anything in the body that echoes the messages is cut out, keys
and key-like strings are masked, and what is left is shortened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import openai

LOGGED_BODY_CHARS = 300
MIN_KEY_CHARS = 8
READ_BODY_CHARS = 4_000  # more than this of an error body is never looked at
# Any run of this many characters found in the prompt counts as an echo of it.
ECHO_WINDOW = 20
# Keys of an error body that hold what was sent (pydantic's "input", a proxy's copy).
_ECHO_KEYS = frozenset({"input", "messages", "prompt", "content", "body", "request"})
_KEY_LIKE = re.compile(r"\b(sk|gsk|xai|key)-[A-Za-z0-9_\-]{6,}")


class _Prompt:
    """The prompt's text, as the set of its ECHO_WINDOW-character runs."""

    def __init__(self, messages: Sequence[dict[str, Any]]) -> None:
        self.windows: set[str] = set()
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                self.windows.update(
                    content[i : i + ECHO_WINDOW] for i in range(len(content) - ECHO_WINDOW + 1)
                )

    def redact(self, text: str) -> str:
        if not self.windows or len(text) < ECHO_WINDOW:
            return text
        covered = [False] * len(text)
        for i in range(len(text) - ECHO_WINDOW + 1):
            if text[i : i + ECHO_WINDOW] in self.windows:
                covered[i : i + ECHO_WINDOW] = [True] * ECHO_WINDOW
        parts: list[str] = []
        i = 0
        while i < len(text):
            if covered[i]:
                while i < len(text) and covered[i]:
                    i += 1
                parts.append("[prompt]")
            else:
                parts.append(text[i])
                i += 1
        return "".join(parts)


def loggable_body(
    exc: openai.APIError, messages: Sequence[dict[str, Any]], api_key: str
) -> str | None:
    """The error's body, fit for a log line; None when there is none."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    try:
        raw = exc.response.text[:READ_BODY_CHARS]
    except Exception:  # a streamed body may be gone
        return None
    prompt = _Prompt(messages)
    try:
        text = json.dumps(_cleaned(json.loads(raw), prompt), ensure_ascii=False)
    except ValueError:
        text = prompt.redact(raw)
    if len(api_key) >= MIN_KEY_CHARS:  # "x" for a local server is no secret to mask
        text = text.replace(api_key, "[key]")
    text = _KEY_LIKE.sub("[key]", text)
    if len(text) > LOGGED_BODY_CHARS:
        text = text[:LOGGED_BODY_CHARS] + "…"
    return text


def _cleaned(value: Any, prompt: _Prompt) -> Any:
    if isinstance(value, dict):
        return {
            key: "[omitted]" if key in _ECHO_KEYS else _cleaned(item, prompt)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_cleaned(item, prompt) for item in value]
    if isinstance(value, str):
        return prompt.redact(value)
    return value
