"""Scripted replies for the OpenAI emulator, and the thread-safe stores that hold them.

Tests script replies from their own thread while the emulator answers on its event-loop
thread (for a worker that may live in another process), so the stores guard everything
with a lock and hold plain data only.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, TypeAlias

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the scripted assistant; a dict ``arguments`` is JSON-encoded."""

    name: str
    arguments: str | dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: the emulator makes up a "call_…" id

    @classmethod
    def from_value(cls, value: ToolCall | Mapping[str, Any]) -> ToolCall:
        """Accept a ToolCall, ``{"name", "arguments"}``, or OpenAI's ``{"id", "function"}``."""
        if isinstance(value, ToolCall):
            return value
        function = value.get("function", value)
        return cls(
            name=function["name"], arguments=function.get("arguments", {}), id=value.get("id")
        )

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """A successful assistant turn; a dict ``content`` is sent as its JSON serialisation."""

    content: str | dict[str, Any] | None = None
    tool_calls: list[ToolCall | dict[str, Any]] | None = None
    _: KW_ONLY
    prompt_tokens: int | None = None  # overrides the word count of the request
    completion_tokens: int | None = None  # overrides the word count of the reply
    finish_reason: FinishReason | None = None  # None: "tool_calls" if any, else "stop"
    delay: float = 0.0  # seconds to wait before answering
    # Seconds between the pieces of a streamed answer, so a client sees it arrive over time.
    piece_delay: float = 0.0
    # False: a streamed answer never carries usage, as llama-cpp-python's server does
    # (it ignores stream_options).
    stream_usage: bool = True
    repeat: bool = False

    def content_text(self) -> str | None:
        if isinstance(self.content, dict):
            return json.dumps(self.content)
        return self.content


@dataclass(frozen=True)
class Failure:
    """An OpenAI-shaped HTTP error; ``retry_after`` becomes the Retry-After header."""

    status: int
    message: str
    retry_after: float | None = None
    _: KW_ONLY
    repeat: bool = False


@dataclass(frozen=True)
class Hang:
    """Say nothing for ``seconds``, then answer 504 if the client is still waiting."""

    seconds: float
    _: KW_ONLY
    repeat: bool = False


@dataclass(frozen=True)
class Garbage:
    """Answer successfully with ``text`` as the content, e.g. malformed JSON."""

    text: str
    _: KW_ONLY
    repeat: bool = False


ScriptedReply: TypeAlias = Reply | Failure | Hang | Garbage

_ABSENT = object()


@dataclass(frozen=True)
class Refusal:
    """A server that does not take part of a request: requests for ``model`` whose body
    has ``field`` (a dotted path, e.g. "response_format.type") are answered ``failure``,
    when it equals ``value`` (None: whatever it is). Unlike scripts, refusals are never
    used up: they are what that server is, e.g. `LLAMA_CPP_PYTHON_JSON_SCHEMA`."""

    model: str
    field: str
    value: str | None
    failure: Failure

    def applies_to(self, body: Mapping[str, Any]) -> bool:
        if body.get("model") != self.model:
            return False
        found: Any = body
        for key in self.field.split("."):
            found = found.get(key, _ABSENT) if isinstance(found, Mapping) else _ABSENT
        if found is _ABSENT or found is None:
            return False
        return self.value is None or found == self.value


def llama_cpp_python_json_schema(model: str) -> Refusal:
    """llama-cpp-python's server (0.3.x) answering a json_schema response format: HTTP 500
    from its request validation; it takes {"type": "json_object", "schema": ...}."""
    return Refusal(
        model,
        "response_format.type",
        "json_schema",
        Failure(
            500,
            "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
            "  Input should be 'text' or 'json_object' [type=literal_error, "
            "input_value='json_schema', input_type=str]",
        ),
    )


def strict_json_object(model: str) -> Refusal:
    """A server that takes json_object only as OpenAI defines it, and answers 400 naming
    the response format when it carries a schema."""
    return Refusal(
        model,
        "response_format.schema",
        None,
        Failure(400, "Invalid parameter: 'response_format.schema' is not supported."),
    )


def reasoning_model_max_tokens(model: str) -> Refusal:
    """OpenAI's reasoning models: 400 for ``max_tokens``, which they call
    ``max_completion_tokens``."""
    return Refusal(
        model,
        "max_tokens",
        None,
        Failure(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
        ),
    )


class RefusalStore:
    """The refusals in force, checked in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refusals: list[Refusal] = []

    def add(self, refusal: Refusal) -> None:
        with self._lock:
            self._refusals.append(refusal)

    def find(self, body: Mapping[str, Any]) -> Refusal | None:
        with self._lock:
            return next((r for r in self._refusals if r.applies_to(body)), None)

    def clear(self) -> None:
        with self._lock:
            self._refusals.clear()


@dataclass(frozen=True)
class _Entry:
    match: str | None
    reply: ScriptedReply


class ScriptStore:
    """Queued replies, taken in order by the first request whose text contains their match.

    Precedence for one request: the first queued entry whose ``match`` is a substring of
    the request's text; failing that, the first entry with ``match=None``; failing that,
    the default. Every non-None match counts as equally specific, so order decides
    between them — that keeps a multi-turn script readable top to bottom.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._default: ScriptedReply | None = None

    def add(self, replies: Iterable[ScriptedReply], match: str | None = None) -> None:
        with self._lock:
            self._entries.extend(_Entry(match, reply) for reply in replies)

    def set_default(self, reply: ScriptedReply | None) -> None:
        with self._lock:
            self._default = reply

    def take(self, text: str) -> ScriptedReply | None:
        """The reply for a request with this text, consuming it unless it repeats."""
        with self._lock:
            chosen: int | None = None
            for index, entry in enumerate(self._entries):
                if entry.match is not None and entry.match in text:
                    chosen = index
                    break
                if entry.match is None and chosen is None:
                    chosen = index
            if chosen is None:
                return self._default
            entry = self._entries[chosen]
            if not entry.reply.repeat:
                del self._entries[chosen]
            return entry.reply

    def pending(self) -> list[tuple[str | None, ScriptedReply]]:
        """Unconsumed one-shot entries as (match, reply); repeating ones never run out."""
        with self._lock:
            return [(e.match, e.reply) for e in self._entries if not e.reply.repeat]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._default = None


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    body: dict[str, Any]
    text: str  # what scripts are matched against
    at: float  # time.monotonic() on arrival


class RequestLog:
    """Every request body the emulator received, in arrival order."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._items: list[LoggedRequest] = []

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._changed:
            self._items.append(LoggedRequest(path, body, request_text(body), time.monotonic()))
            self._changed.notify_all()

    def bodies(self, match: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Copies of the bodies for ``path`` (None: all) whose text contains ``match``."""
        with self._changed:
            return self._select(match, path)

    def wait_for(
        self, count: int, match: str | None, path: str | None, timeout: float
    ) -> list[dict[str, Any]]:
        """Block until at least ``count`` bodies match; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: len(self._select(match, path)) >= count, timeout=timeout
            ):
                seen = len(self._select(match, path))
                raise TimeoutError(f"saw {seen} of {count} requests matching {match!r}")
            return self._select(match, path)

    def clear(self) -> None:
        with self._changed:
            self._items.clear()

    def _select(self, match: str | None, path: str | None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(item.body)  # callers may mutate; the log must stay as received
            for item in self._items
            if (path is None or item.path == path) and (match is None or match in item.text)
        ]


def request_text(body: Mapping[str, Any]) -> str:
    """The text of a chat request's messages (or an embeddings request's input), joined."""
    parts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                parts.extend(_message_texts(message))
    inputs = body.get("input")
    if isinstance(inputs, str):
        parts.append(inputs)
    elif isinstance(inputs, list):
        parts.extend(item if isinstance(item, str) else json.dumps(item) for item in inputs)
    return "\n".join(parts)


def _message_texts(message: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.extend(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    if isinstance(message.get("refusal"), str):
        texts.append(message["refusal"])
    # A previous assistant turn's tool calls are part of the conversation a script may key on.
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            texts.extend(str(function.get(key, "")) for key in ("name", "arguments"))
    return texts
