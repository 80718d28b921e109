"""How to ask one server for JSON, learnt from its errors and remembered per provider.

Servers differ in what they take:

- ``json_schema`` (OpenAI, llama.cpp's llama-server, vLLM, Ollama): the reply is held to
  the schema. Tried first.
- ``json_object``: llama-cpp-python's server answers json_schema with HTTP 500 ("Input
  should be 'text' or 'json_object'") but takes ``{"type": "json_object", "schema": …}``;
  the schema also goes into the prompt, for servers that only promise *some* JSON.
- ``json_object_bare``: ``{"type": "json_object"}`` as OpenAI defines it, for servers that
  refuse the extra ``schema`` key (Groq and others answer 400 naming it); the schema is in
  the prompt only.
- ``prompt``: no response format at all; the prompt asks for JSON matching the schema,
  and the reply's JSON is taken out of any prose or code fence around it.

In every mode the reply is validated as before. A refusal is told apart from other
errors by its status and its body naming the response format; the step down costs no
retry, and the working mode is remembered for that base URL and model for the process.
The same memory holds the other request details a server was seen to refuse
(``max_tokens`` where it wants ``max_completion_tokens``, a temperature, stream options).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import openai

Mode = Literal["json_schema", "json_object", "json_object_bare", "prompt"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "json_object_bare", "prompt")

# Statuses a server answers an unsupported response format with: 400/422 (validation),
# 500 (llama-cpp-python), 501.
_FORMAT_STATUSES = frozenset({400, 422, 500, 501})
_FORMAT_WORDS = re.compile(
    r"response_format|response format|json_schema|json_object|structured output|'text'",
    re.IGNORECASE,
)
_STATUS_REJECTED = frozenset({400, 422})


@dataclass(frozen=True)
class JsonSchema:
    """What a structured call asks for: a named JSON schema."""

    name: str
    schema: dict[str, Any]
    strict: bool = True

    def response_format(self, mode: Mode) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict},
            }
        if mode == "json_object":
            # llama.cpp's servers constrain the reply with a schema given this way; other
            # servers that take json_object ignore it or refuse it (then: without it).
            return {"type": "json_object", "schema": self.schema}
        if mode == "json_object_bare":
            return {"type": "json_object"}
        return None

    def instruction(self) -> str:
        compact = json.dumps(self.schema, separators=(",", ":"), ensure_ascii=False)
        return (
            "Reply with only one JSON object, no other text and no code fence. It must match "
            f"this JSON schema ({self.name}): {compact}"
        )

    def messages(self, messages: list[dict[str, Any]], mode: Mode) -> list[dict[str, Any]]:
        """``messages`` as sent in ``mode``: without a schema-enforcing format, the schema
        goes at the end of the one system message (made first if there is none)."""
        if mode == "json_schema":
            return messages
        return with_system_note(messages, self.instruction())


def with_system_note(messages: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """``messages`` with ``note`` at the end of the one system message, which comes first
    (made if there is none): templates that allow one system message, first, take it."""
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        content = first.get("content")
        text = content if isinstance(content, str) else ""
        return [{**first, "content": f"{text}\n\n{note}" if text else note}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


@dataclass(frozen=True)
class Quirks:
    """What one provider (base URL and model) was seen to take."""

    mode: Mode = "json_schema"
    length_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    temperature: bool = True  # False: the model only takes its default
    stream_options: bool = True
    tools: Literal["native", "json"] = "native"  # how tool turns are asked for


@dataclass
class QuirkMemory:
    """Per (base URL, model), for the life of the process; shared by every chain built
    from the same configuration (a template's model is a provider of its own)."""

    _known: dict[tuple[str, str], Quirks] = field(default_factory=dict)
    # Those whose native tool calling was (or is being) probed (LLM_TOOL_CALLING auto).
    _probed: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim_probe(self, base_url: str | None, model: str) -> bool:
        """True once per (base URL, model): the caller probes it."""
        key = (base_url or "", model)
        with self._lock:
            if key in self._probed or self._known.get(key, Quirks()).tools == "json":
                return False
            self._probed.add(key)
            return True

    def forget_probe(self, base_url: str | None, model: str) -> None:
        with self._lock:
            self._probed.discard((base_url or "", model))

    def get(self, base_url: str | None, model: str) -> Quirks:
        with self._lock:
            return self._known.get((base_url or "", model), Quirks())

    def set(self, base_url: str | None, model: str, quirks: Quirks) -> None:
        with self._lock:
            self._known[(base_url or "", model)] = quirks

    def learn(self, base_url: str | None, model: str, learnt: Quirks) -> Quirks:
        """Add what one request learnt to what others may have learnt meanwhile (each
        quirk only ever moves one way), and return the result."""
        key = (base_url or "", model)
        with self._lock:
            known = self._known.get(key, Quirks())
            merged = Quirks(
                mode=max(known.mode, learnt.mode, key=MODES.index),
                length_param=(
                    "max_completion_tokens"
                    if "max_completion_tokens" in (known.length_param, learnt.length_param)
                    else "max_tokens"
                ),
                temperature=known.temperature and learnt.temperature,
                stream_options=known.stream_options and learnt.stream_options,
                tools="json" if "json" in (known.tools, learnt.tools) else "native",
            )
            self._known[key] = merged
            return merged


def status_of(exc: openai.APIError) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def error_text(exc: openai.APIError) -> str:
    """The error's message and raw body, for matching (never logged as such)."""
    parts = [str(exc.message)]
    if isinstance(exc, openai.APIStatusError):
        with contextlib.suppress(Exception):  # a body that cannot be read says nothing
            parts.append(exc.response.text)
    return " ".join(parts)


def next_mode(mode: Mode) -> Mode | None:
    index = MODES.index(mode)
    return MODES[index + 1] if index + 1 < len(MODES) else None


def adapt(
    quirks: Quirks, exc: openai.APIError, *, structured: bool, tools: bool = False
) -> Quirks | None:
    """The quirks to try next when ``exc`` says the server refused part of the request
    (not the request as a whole); None when it did not, or nothing is left to change.
    ``tools``: the request offered tools natively."""
    status = status_of(exc)
    if status is None:
        return None
    text = error_text(exc)
    lowered = text.lower()
    if tools and status in _FORMAT_STATUSES and re.search(r"\btools?\b|tool_choice", lowered):
        return replace(quirks, tools="json")
    if status in _STATUS_REJECTED:
        if "max_completion_tokens" in lowered and quirks.length_param == "max_tokens":
            return replace(quirks, length_param="max_completion_tokens")
        if ("temperature" in lowered or "frequency_penalty" in lowered) and quirks.temperature:
            return replace(quirks, temperature=False)
        if "stream_options" in lowered and quirks.stream_options:
            return replace(quirks, stream_options=False)
    if structured and status in _FORMAT_STATUSES and _FORMAT_WORDS.search(text):
        following = next_mode(quirks.mode)
        if following is not None:
            return replace(quirks, mode=following)
    return None


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def json_candidates(content: str) -> list[str]:
    """Texts that may be the reply's JSON object, best first: the reply itself, the inside
    of a code fence, the span from the first ``{`` to the last ``}``."""
    stripped = content.strip()
    candidates = [stripped]
    for fenced in _FENCE.findall(content):
        candidates.append(fenced.strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    unique: list[str] = []
    for candidate in candidates:
        if candidate and candidate not in unique:
            unique.append(candidate)
    return unique
