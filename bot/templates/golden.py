"""Golden sets: requests an agent template must handle, the fixtures they run against, and
what a correct run shows (tools called with which arguments, actions proposed, sources
cited, phrases that must or must not appear). One JSON object per line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.templates.spec import TemplateError


class PassageFixture(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    text: str
    url: str | None = None


class ToolExpectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # must be among the call's


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools_called: list[ToolExpectation] = Field(default_factory=list)
    actions_proposed: list[str] = Field(default_factory=list)  # tool names, in order
    tools_refused: list[str] = Field(default_factory=list)  # called, but not the template's
    cited_sources: list[str] = Field(default_factory=list)  # passage titles
    must_include: list[str] = Field(default_factory=list)
    must_not_include: list[str] = Field(default_factory=list)


class GoldenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    request: str
    thread: list[dict[str, str]] = Field(default_factory=list)  # earlier turns
    passages: list[PassageFixture] = Field(default_factory=list)  # what search finds
    tool_results: dict[str, Any] = Field(default_factory=dict)  # read-only tool -> result
    # The model's replies (plan, then drafts) when run against the scripted emulator.
    script: list[dict[str, Any]] = Field(default_factory=list)
    expect: Expectations


@dataclass
class Transcript:
    """What one run did, as the checks see it."""

    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # tools the template does not offer
    answer: str = ""
    cited: list[str] = field(default_factory=list)


def load_golden(path: Path) -> list[GoldenCase]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(GoldenCase.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise TemplateError(f"{path.name} line {number}: {exc}") from None
    return cases


def check(case: GoldenCase, run: Transcript) -> dict[str, bool]:
    """Each check of the case by name, passed or not."""
    expect = case.expect
    results: dict[str, bool] = {}
    for wanted in expect.tools_called:
        results[f"called {wanted.name}"] = any(
            name == wanted.name and all(args.get(k) == v for k, v in wanted.arguments.items())
            for name, args in run.tool_calls
        )
    for name in expect.tools_refused:
        results[f"refused {name}"] = name in run.refused and all(
            called != name for called, _ in run.tool_calls
        )
    if expect.actions_proposed or run.proposed:
        results["actions proposed"] = run.proposed == expect.actions_proposed
    for title in expect.cited_sources:
        results[f"cites {title}"] = title in run.cited
    answer = run.answer.lower()
    for phrase in expect.must_include:
        results[f"says {phrase!r}"] = phrase.lower() in answer
    for phrase in expect.must_not_include:
        results[f"does not say {phrase!r}"] = phrase.lower() not in answer
    return results
