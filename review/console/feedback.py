"""`/agent feedback` and `/agent handoff`: what people thought of the answers, golden cases
to make from it (review/answer_feedback.py, review/golden_cases.py), and who "Ask a human"
under an answer reaches (review/handoff.py)."""

from __future__ import annotations

from review.answer_feedback import feedback_summary
from review.console.changes import change_setting
from review.console.context import Invocation, Reply
from review.golden_cases import feedback_blocks, items_async
from review.handoff import parse_target


async def feedback(invocation: Invocation, args: list[str]) -> Reply:
    """The summary, then the latest feedback, each with "Make a golden case"."""
    summary = await feedback_summary(invocation.pool, invocation.tenant_id)
    found, team = await items_async(invocation.pool, invocation.tenant_id)
    return Reply(summary, blocks=feedback_blocks(summary, found, team))


async def handoff(invocation: Invocation, args: list[str]) -> Reply:
    target = parse_target(args[0]) if len(args) == 1 else None
    if target is None:
        return Reply("Usage: `/agent handoff @person` or `/agent handoff @user-group`")
    await change_setting(invocation, "handoff_target", target)
    return Reply(f'"Ask a human" under an answer now hands the thread to {target}.')
