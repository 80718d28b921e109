"""Asking a model for JSON that must validate against a pydantic schema.

Every LLM boundary in the loop goes through `StructuredLLM.ask`: the schema is sent as a
JSON-schema response format, the reply is parsed into the model, and a reply that does
not fit is re-asked a bounded number of times with the validation error shown to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from bot.llm.errors import MalformedOutput
from bot.llm.providers import CallRecord, ProviderChain, TextSink, UsageSink

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__,
            "schema": schema.model_json_schema(),
            "strict": True,
        },
    }


@dataclass
class StructuredLLM:
    chain: ProviderChain
    malformed_retries: int

    def ask(
        self,
        schema: type[M],
        messages: list[dict[str, Any]],
        *,
        on_call: UsageSink,
        on_text: TextSink | None = None,
    ) -> M:
        """``on_text`` (optional) hears the raw JSON so far while the reply streams in."""
        conversation = list(messages)
        response_format = response_format_for(schema)
        for attempt in range(self.malformed_retries + 1):
            # The chain reports failed calls itself; a successful one is reported here, once
            # its output has been judged ok or malformed.
            completion = self.chain.complete(
                conversation, response_format=response_format, on_call=on_call, on_text=on_text
            )
            try:
                parsed = schema.model_validate_json(completion.content)
                outcome = "ok"
            except ValidationError as exc:
                parsed = None
                outcome = "malformed"
                problem = _describe(exc)
            on_call(
                CallRecord(
                    provider=completion.provider,
                    model=completion.model,
                    outcome=outcome,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_ms=completion.latency_ms,
                )
            )
            if parsed is not None:
                return parsed
            log.warning("llm.malformed_output", schema=schema.__name__, attempt=attempt + 1)
            conversation = [
                *messages,
                {"role": "assistant", "content": completion.content[:2000]},
                {
                    "role": "user",
                    "content": (
                        f"That reply was not valid JSON for the {schema.__name__} schema "
                        f"({problem}). Reply again with only the JSON object."
                    ),
                },
            ]
        raise MalformedOutput(f"the model's replies did not fit the {schema.__name__} schema")


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return f"{first['msg']} at {where}"
