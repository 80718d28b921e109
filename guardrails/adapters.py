"""The agent loop's Retrieve and Act, screened: wrap the request's retriever and toolbox
in these and the loop itself needs no change.

- Passages come back with personal data hidden, wrapped as untrusted data, and any
  injection attempt noted in `flags`.
- A tool call the tenant's policy refuses is not attempted: the result says why, in words
  the model passes on, and the refusal is logged. Allowed calls run; their output is
  screened like a passage.

`flags` is the list the request's ReviewedToolbox reads (the same list object), so a flag
raised while retrieving is seen by every later tool call of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.knowledge import Passage, Retriever, Toolbox, ToolResult
from core.schemas import ToolCall
from core.tools import Tool
from guardrails.facade import Guardrails, Screened
from guardrails.tool_policy import check_tool_call


def _note(flags: list[str], screened: Screened) -> None:
    for flag in screened.flags:
        line = flag.for_people()
        if line not in flags:
            flags.append(line)


@dataclass
class ScreenedRetriever:
    inner: Retriever
    guardrails: Guardrails
    conversation_key: str
    flags: list[str] = field(default_factory=list)

    def search(self, tenant_id: int, queries: list[str], *, limit: int) -> list[Passage]:
        passages = self.inner.search(tenant_id, queries, limit=limit)
        screened = []
        for passage in passages:
            result = self.guardrails.screen_untrusted(
                tenant_id, self.conversation_key, "document", passage.title, passage.text
            )
            _note(self.flags, result)
            screened.append(Passage(passage.id, passage.title, result.text_for_llm, passage.url))
        return screened


@dataclass
class ScreenedToolbox:
    inner: Toolbox
    guardrails: Guardrails
    tenant_id: int
    conversation_key: str
    channel: str | None
    flags: list[str] = field(default_factory=list)

    def offered(self) -> list[Tool]:
        """The inner tools the tenant's tool policy allows here (its allow and deny lists,
        for the workspace and this channel); argument rules are judged on each call."""
        policy = self.guardrails.policies.load(self.tenant_id).tools
        return [
            tool
            for tool in self.inner.offered()
            if check_tool_call(policy, tool.name, {}, self.channel).allowed
        ]

    def run(self, call: ToolCall, index: int) -> ToolResult:
        check = self.guardrails.check_tool(
            self.tenant_id, self.conversation_key, call.name, call.arguments, channel=self.channel
        )
        if not check.decision.allowed:
            return ToolResult(
                call.name,
                ok=False,
                output=f"Refused by policy, not attempted: {check.decision.reason_for_people}",
            )
        result = self.inner.run(call, index)
        screened = self.guardrails.screen_untrusted(
            self.tenant_id, self.conversation_key, "tool result", call.name, result.output
        )
        _note(self.flags, screened)
        return replace(result, output=screened.text_for_llm)
