"""What the loop's Retrieve and Act steps may call. Later issues fill these in; until
then a tenant has no knowledge base and no tools, and the loop says so honestly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.schemas import ToolCall
from core.tools import Tool


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    url: str | None = None


# How a tool result begins when its action waits for a person's approval: what the
# model reads of it. The 1.5B model copies these words into its reply, so they are the
# words a person should read there (told "Not done yet: sent for approval (Add a note to
# a HubSpot contact)", it wrote exactly that).
AWAITING_APPROVAL = "Waiting for approval, not done yet"


@dataclass(frozen=True)
class ToolResult:
    name: str
    ok: bool
    output: str
    # The call became an action that waits for approval: nothing has happened yet, which
    # Verify holds the reply to. A flag, not the output's words: the guardrails wrap the
    # output as untrusted content before the model sees it.
    awaits_approval: bool = False
    # What a read looked up, in people's words (the tool's summary: "Search Gmail for
    # 'renewal'"), for a reply that found nothing to say where it looked. Empty otherwise.
    looked_up: str = ""
    # What the Draft is shown instead of ``output``, when the output is the agent's own
    # words to the planner: shown "call it again now with the right id", the 1.5B model
    # wrote that into the reply. Empty: the Draft sees the output.
    for_reply: str = ""


class Retriever(Protocol):
    def search(self, tenant_id: int, queries: list[str], *, limit: int) -> list[Passage]: ...


class Toolbox(Protocol):
    """The tools of one request: what the model is offered, and how a call runs."""

    def offered(self) -> list[Tool]: ...

    def run(self, call: ToolCall, index: int) -> ToolResult: ...


class EmptyKnowledge:
    """A tenant with no knowledge base yet: every search finds nothing."""

    def search(self, tenant_id: int, queries: list[str], *, limit: int) -> list[Passage]:
        return []


class NoTools:
    """No tools: every call is refused with a reason the model can read."""

    def offered(self) -> list[Tool]:
        return []

    def run(self, call: ToolCall, index: int) -> ToolResult:
        return ToolResult(call.name, ok=False, output=f"no tool named {call.name!r} is available")
