"""Counting a prompt's tokens: with the model server's own tokenizer where it has one, or a
safe estimate.

llama.cpp's llama-server counts text with its model's tokenizer at ``POST /tokenize`` (on
the server's root, beside ``/v1``). Each local server is asked once whether it has that
endpoint, and the answer is remembered per base URL for the process: a server without it
(Ollama, vLLM's differently shaped one, LM Studio) is counted with the estimate from then
on. Cloud APIs are not asked: they have no such endpoint, and their models' contexts are
large. No tokenizer is ever downloaded.

The estimate over-counts on purpose (a token per three characters, where English runs
about four), so a prompt fitted with it fits the real context too.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import structlog

from core.llm.limits import is_local

log = structlog.get_logger(__name__)

CHARS_PER_TOKEN = 3  # deliberately low: code, JSON and names run shorter than English
# Per message, for the chat template's role markers and separators (ChatML: about 5).
MESSAGE_OVERHEAD_TOKENS = 6
TOKENIZE_TIMEOUT_SECONDS = 5.0
# A server that answered /tokenize with an error that may pass (loading its model: 503,
# or not reachable) is asked again after this long; one that has no /tokenize, never.
TOKENIZE_RETRY_SECONDS = 60.0
MAX_CACHED_COUNTS = 4_096  # texts whose count is kept (system prompts, passages, turns)
# Statuses meaning the server has no such endpoint (or not this one's shape).
_NO_ENDPOINT = frozenset({400, 404, 405, 422, 501})

Method = Literal["tokenizer", "estimate"]
Message = dict[str, Any]


def estimate_text(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def tokenize_url(base_url: str) -> str:
    """``POST /tokenize`` on the server's root: the base URL without its ``/v1``."""
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return f"{root}/tokenize"


def message_text(message: Message) -> str:
    """What of a chat message the model reads as text: its content, and the name and
    arguments of the tool calls it made."""
    content = message.get("content")
    parts = [content if isinstance(content, str) else ""]
    if isinstance(content, list):
        parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        parts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True)
class Count:
    tokens: int
    method: Method  # how they were counted


@dataclass
class TokenCounter:
    """Counts for every server of the process; shared by the chains built from one
    configuration, like the quirks they learnt (`core.llm.formats.QuirkMemory`)."""

    timeout: float = TOKENIZE_TIMEOUT_SECONDS
    # base URL -> True (it tokenizes), False (it cannot), or when to ask it again.
    _servers: dict[str, bool | float] = field(default_factory=dict)
    _counts: OrderedDict[tuple[str, bytes], int] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_messages(
        self,
        messages: Sequence[Message],
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        extra: Sequence[str] = (),
    ) -> Count:
        """The prompt's tokens: each message's text and its template markup, and the
        ``extra`` texts that are sent beside the messages (a schema or tools put in the
        prompt by the server)."""
        texts = [message_text(m) for m in messages] + list(extra)
        counted = [self.count_text(text, base_url=base_url, api_key=api_key) for text in texts]
        method: Method = (
            "tokenizer" if counted and all(c.method == "tokenizer" for c in counted) else "estimate"
        )
        tokens = sum(c.tokens for c in counted) + MESSAGE_OVERHEAD_TOKENS * len(messages)
        return Count(tokens, method)

    def count_text(
        self, text: str, *, base_url: str | None = None, api_key: str | None = None
    ) -> Count:
        if not text:
            return Count(0, "tokenizer" if self._tokenizes(base_url) is True else "estimate")
        if not base_url or not is_local(base_url) or self._tokenizes(base_url) is False:
            return Count(estimate_text(text), "estimate")
        key = (base_url, hashlib.blake2b(text.encode(), digest_size=16).digest())
        with self._lock:
            cached = self._counts.get(key)
            if cached is not None:
                self._counts.move_to_end(key)
                return Count(cached, "tokenizer")
        tokens = self._tokenize(base_url, api_key, text)
        if tokens is None:
            return Count(estimate_text(text), "estimate")
        with self._lock:
            self._counts[key] = tokens
            while len(self._counts) > MAX_CACHED_COUNTS:
                self._counts.popitem(last=False)
        return Count(tokens, "tokenizer")

    def _tokenizes(self, base_url: str | None) -> bool | None:
        """True or False when known; None when not yet (or again) to be found out."""
        if not base_url:
            return False
        with self._lock:
            known = self._servers.get(base_url)
        if isinstance(known, bool):
            return known
        if known is not None and time.monotonic() < known:
            return False
        return None

    def _tokenize(self, base_url: str, api_key: str | None, text: str) -> int | None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            response = httpx.post(
                tokenize_url(base_url),
                json={"content": text, "add_special": False},
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            self._learn(base_url, time.monotonic() + TOKENIZE_RETRY_SECONDS, type(exc).__name__)
            return None
        tokens = _tokens_of(response)
        if tokens is None:
            gone = response.status_code in _NO_ENDPOINT or response.status_code < 300
            self._learn(
                base_url,
                False if gone else time.monotonic() + TOKENIZE_RETRY_SECONDS,
                f"status {response.status_code}",
            )
            return None
        self._learn(base_url, True, "counts tokens")
        return tokens

    def _learn(self, base_url: str, state: bool | float, why: str) -> None:
        with self._lock:
            before = self._servers.get(base_url)
            self._servers[base_url] = state
        if before != state and (isinstance(state, bool) or not isinstance(before, float)):
            parts = urlsplit(base_url)  # host and port only: a URL may carry credentials
            log.info(
                "llm.tokenizer",
                server=f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname,
                available=state is True,
                why=why,
            )


def _tokens_of(response: httpx.Response) -> int | None:
    """The token count in a /tokenize answer: llama.cpp's ``{"tokens": [...]}``, or a
    ``count`` beside them; None for anything else."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("count"), int):
        return int(body["count"])
    tokens = body.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None
