"""Guardrails around one run: what the model may see, spend and do, and what people see.

Inbound text and the thread's earlier turns reach the model with personal data replaced
by placeholders; retrieved documents and tool results are screened and wrapped as data;
tool calls are checked against the tenant's policy; every model call first checks the
tenant's budget. The draft comes back with this conversation's placeholders restored.
A flagged conversation (possible prompt injection, or a screen asking for review) sends
every action it proposes to approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.agent.prompts import Example, Turn
from core.knowledge import Retriever, Toolbox
from core.llm.structured import StructuredLLM
from guardrails.adapters import ScreenedRetriever, ScreenedToolbox
from guardrails.budgeted_llm import BudgetedLLM
from guardrails.facade import Guardrails
from guardrails.injection import wrap_untrusted


@dataclass
class ScreenedRun:
    question: str
    history: list[Turn]
    corrections: list[Example]
    llm: StructuredLLM | None
    retriever: Retriever
    toolbox: Toolbox
    flags: list[str] = field(default_factory=list)
    blocked_notice: str | None = None  # set: answer with this and do not call the model
    needs_review: bool = False


def screen_run(
    guardrails: Guardrails,
    *,
    tenant_id: int,
    conversation_id: int,
    question: str,
    history: list[Turn],
    corrections: list[Example],
    llm: StructuredLLM | None,
    retriever: Retriever,
    make_toolbox: Callable[[list[str], bool], Toolbox],
    channel: str | None,
    source: str,
    notify_admins: Callable[[str], None],
) -> ScreenedRun:
    key = str(conversation_id)
    screened = guardrails.screen_inbound(tenant_id, key, question, source=source)
    # Earlier turns too: an instruction planted in turn 1 is aimed at a later run.
    earlier = guardrails.screen_history(tenant_id, key, history, source=source)
    flags = [flag.for_people() for flag in (*screened.flags, *earlier.flags)]
    toolbox = ScreenedToolbox(
        make_toolbox(flags, screened.requires_approval or earlier.requires_approval),
        guardrails,
        tenant_id,
        key,
        channel=channel,
        flags=flags,
    )
    if screened.blocked:
        return ScreenedRun(
            question,
            history,
            corrections,
            llm,
            retriever,
            toolbox,
            flags,
            blocked_notice=screened.notice_for_people or "I can't help with that message.",
        )
    if llm is None:
        # Offline mode shows retrieved text to people as it is; nothing goes to a model.
        return ScreenedRun(question, history, corrections, None, retriever, toolbox, flags)
    redacted_history: list[Turn] = [
        {**turn, "content": guardrails.redact_for_llm(tenant_id, key, turn["content"])}
        for turn in history
    ]
    for at in earlier.flagged_turns:  # a flagged turn reaches the model as data only
        turn = redacted_history[at]
        turn["content"] = wrap_untrusted("earlier message", "this conversation", turn["content"])
    redacted_corrections = [
        Example(
            guardrails.redact_for_llm(tenant_id, key, c.original),
            guardrails.redact_for_llm(tenant_id, key, c.corrected) if c.corrected else None,
            c.reason,
        )
        for c in corrections
    ]
    budgeted = BudgetedLLM(
        llm.chain,
        llm.malformed_retries,
        context_tokens=llm.context_tokens,
        tokens=llm.tokens,
        tool_calling=llm.tool_calling,
        guard=guardrails.budgets,
        tenant_id=tenant_id,
        notify_admins=notify_admins,
    )
    return ScreenedRun(
        question=screened.text_for_llm,
        history=redacted_history,
        corrections=redacted_corrections,
        llm=budgeted,
        retriever=ScreenedRetriever(retriever, guardrails, key, flags),
        toolbox=toolbox,
        flags=flags,
        needs_review=screened.action == "review",
    )
