"""OpenAI's JSON shapes: chat completions, stream chunks, errors, embeddings, models.

Pure functions from scripted data to response bodies, kept apart from the HTTP handlers
so the shapes can be read (and compared with the ``openai`` package's types) in one place.

Token counts are deliberately rough: one token per whitespace-separated word, of the
request's message text for the prompt and of the reply's content plus tool-call names
and arguments for the completion. Scripts override them when a test needs exact numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.openai_script import FinishReason, Garbage, Reply, ToolCall

SYSTEM_FINGERPRINT = "fp_chatops_emulator"

# (type, code) per status, as the real API labels them.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    504: ("timeout", None),
}


def count_tokens(text: str) -> int:
    return len(text.split())


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERROR_KINDS.get(status, default)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class Answer:
    """A scripted reply resolved into what one chat completion reports."""

    content: str | None
    tool_calls: list[ToolCall]  # every id filled in
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def resolve(cls, reply: Reply | Garbage, prompt_text: str) -> Answer:
        if isinstance(reply, Garbage):
            return cls(reply.text, [], "stop", count_tokens(prompt_text), count_tokens(reply.text))
        calls = [ToolCall.from_value(call) for call in reply.tool_calls or []]
        calls = [
            ToolCall(c.name, c.arguments, c.id or f"call_{uuid.uuid4().hex[:24]}") for c in calls
        ]
        content = reply.content_text()
        spoken = " ".join([content or "", *(f"{c.name} {c.arguments_json()}" for c in calls)])
        return cls(
            content=content,
            tool_calls=calls,
            finish_reason=reply.finish_reason or ("tool_calls" if calls else "stop"),
            prompt_tokens=_pick(reply.prompt_tokens, count_tokens(prompt_text)),
            completion_tokens=_pick(reply.completion_tokens, count_tokens(spoken)),
        )

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _pick(override: int | None, counted: int) -> int:
    return counted if override is None else override


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(
    answer: Answer, *, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in answer.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": answer.usage(),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def stream_chunks(
    answer: Answer,
    *,
    completion_id: str,
    model: str,
    created: int,
    include_usage: bool,
    piece_chars: int,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one streamed answer, in order."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            body["usage"] = None  # the real API announces usage as null until the last chunk
        return body

    opening = "" if answer.content is not None else None
    yield chunk({"role": "assistant", "content": opening, "refusal": None})
    for piece in _pieces(answer.content or "", piece_chars):
        yield chunk({"content": piece})
    for index, call in enumerate(answer.tool_calls):
        # The header delta carries id, type and name; the client's stream helper needs "type".
        header = {"name": call.name, "arguments": ""}
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": call.id, "type": "function", "function": header}
                ]
            }
        )
        for piece in _pieces(call.arguments_json(), piece_chars):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, answer.finish_reason)
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = answer.usage()
        yield last


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text's hash: the same text gives the same vector anywhere."""
    digest = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    raw = [value / 2**31 - 1.0 for value in struct.unpack(f"<{dimensions}I", digest)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]


def embeddings_body(
    inputs: list[str], *, model: str, dimensions: int, encoding_format: str
) -> dict[str, Any]:
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        encoded: list[float] | str = vector
        if encoding_format == "base64":  # what the client asks for by default: packed float32
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(text) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def models_body(models: tuple[str, ...], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "chatops-emulator"}
            for name in models
        ],
    }
