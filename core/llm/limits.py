"""How much a request may ask for and how long it may take.

- Tokens: every request carries ``max_tokens``, sized by what the call is for (its
  *purpose*), and a low temperature. Without a cap a small model can repeat itself until
  its context is full (a draft that looped on "[1][2]…" for 6,891 tokens and 11 minutes).
- Time: a provider's timeout is LLM_TIMEOUT_SECONDS when set; otherwise a local server
  (loopback, a private address, a ``localhost`` or dot-less name such as a Compose
  service) gets a longer one than a cloud API, because a small model on CPU can take a
  minute to read a long prompt. The timeout is the longest wait for the *next* bytes:
  replies are streamed, so a model that is still writing never hits it.
- A job's deadline (``job_deadline``) caps each request's wait, so a job's time limit
  is not held up by a socket read that would go on for minutes.
"""

from __future__ import annotations

import contextvars
import ipaddress
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import openai

# What a call is for; it decides the reply's token cap. Unknown purposes use "default".
Purpose = Literal["plan", "draft", "tool_turn", "summary", "default"]
PURPOSES: tuple[Purpose, ...] = ("plan", "draft", "tool_turn", "summary", "default")

DEFAULT_TEMPERATURE = 0.2
# Sent with the temperature: a small model that starts repeating a sentence otherwise
# goes on until its token cap (seen with Qwen2.5-Coder-1.5B: one sentence 40 times, a
# 1,024-token draft cut off twice, three minutes each on CPU).
DEFAULT_FREQUENCY_PENALTY = 0.3
DEFAULT_MAX_TOKENS: Mapping[Purpose, int] = {
    "plan": 768,  # search queries and a few tool calls, an email body at most
    "draft": 1_024,  # an answer of up to ~3,000 characters with its citations
    "tool_turn": 768,
    "summary": 512,
    "default": 1_024,
}

CLOUD_TIMEOUT_SECONDS = 30.0
LOCAL_TIMEOUT_SECONDS = 180.0
CONNECT_TIMEOUT_CAP = 10.0  # a server that does not accept the connection is down
DEADLINE_SLACK_SECONDS = 2.0  # past a job's deadline, a request still gets this long


@dataclass(frozen=True)
class RequestLimits:
    temperature: float | None = DEFAULT_TEMPERATURE  # None: not sent
    frequency_penalty: float | None = DEFAULT_FREQUENCY_PENALTY  # None or 0: not sent
    max_tokens: Mapping[Purpose, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TOKENS))

    def tokens_for(self, purpose: str) -> int:
        limit = self.max_tokens.get(purpose)  # type: ignore[call-overload]  # any str is fine
        return int(limit if limit is not None else self.max_tokens["default"])


def is_local(base_url: str | None) -> bool:
    """Whether ``base_url`` points at a server on this machine or its private network."""
    if not base_url:
        return False  # the client's default: api.openai.com
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or host == "host.docker.internal":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A name without a dot ("ollama", "llm") only resolves inside a private network.
        return "." not in host
    return address.is_loopback or address.is_private or address.is_link_local


def timeout_seconds(base_url: str | None, configured: float | None) -> float:
    """The provider's timeout: the configured one, else the default for where it runs."""
    if configured is not None:
        return configured
    return LOCAL_TIMEOUT_SECONDS if is_local(base_url) else CLOUD_TIMEOUT_SECONDS


def http_timeout(seconds: float) -> openai.Timeout:
    """``seconds`` as the wait for each read (between streamed chunks), each write and a
    pooled connection; connecting gets at most CONNECT_TIMEOUT_CAP."""
    # Imported here, not with the module: core.settings reads RequestLimits from it, and
    # processes that never call a model (`chatops migrate`, the listeners) need not spend
    # a third of a second importing the OpenAI client.
    import openai

    return openai.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_CAP))


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llm_job_deadline", default=None
)


@contextmanager
def job_deadline(seconds: float) -> Iterator[None]:
    """Within this block, no request waits much past ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def capped_by_deadline(seconds: float) -> float:
    """``seconds``, or less when the current job's deadline comes sooner (plus a little
    slack, so the job's own time limit is what ends it and says so)."""
    deadline = _deadline.get()
    if deadline is None:
        return seconds
    remaining = max(0.0, deadline - time.monotonic()) + DEADLINE_SLACK_SECONDS
    return min(seconds, remaining)
