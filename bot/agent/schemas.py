"""The JSON the model must return at each LLM boundary of the loop.

`extra="forbid"` and no defaults keep every schema valid for strict JSON-schema mode,
which requires every property to be listed and no others allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments_json: str = Field(description="The tool's arguments as a JSON object string")
    reason: str = Field(description="Why this call helps the person, for the approver to read")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: Literal["answer", "clarify", "decline"]
    search_queries: list[str] = Field(
        max_length=3, description="What to look up in the company's knowledge, if anything"
    )
    tool_calls: list[ToolCall] = Field(max_length=3)


class Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="The reply to post in the thread, in Slack mrkdwn")
    citations: list[str] = Field(
        description='The numbers of the sources the answer cites, as strings, e.g. ["1", "3"]'
    )
