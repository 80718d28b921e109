"""The words we send to the model. Kept together so they can be reviewed as prose."""

from __future__ import annotations

import json
from typing import Any

from bot.agent.knowledge import Passage, ToolResult
from bot.agent.schemas import Plan

PLAN_SYSTEM = (
    "You are a company's assistant in Slack. Decide how to handle the latest message in "
    "the thread. intent: 'answer' to answer it, 'clarify' if you must ask a question "
    "first, 'decline' if it is not something you should do. search_queries: up to three "
    "short queries for the company's knowledge base, or none. tool_calls: none unless a "
    "listed tool is needed. Reply with JSON only."
)

DRAFT_SYSTEM = (
    "You are a company's assistant in Slack. Write the reply to the latest message in the "
    "thread, in Slack mrkdwn, short and direct. Use only the sources given for facts about "
    "the company and list the ids of the sources you used in citations; if the sources do "
    "not answer the question, say so plainly instead of guessing. Reply with JSON only."
)

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": ...}


def plan_messages(history: list[Turn], question: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": PLAN_SYSTEM},
        *history,
        {"role": "user", "content": question},
    ]


def draft_messages(
    history: list[Turn],
    question: str,
    plan: Plan,
    passages: list[Passage],
    tool_results: list[ToolResult],
    problems: list[str],
) -> list[dict[str, Any]]:
    sources = [{"id": p.id, "title": p.title, "text": p.text} for p in passages]
    context = {
        "intent": plan.intent,
        "sources": sources,
        "tool_results": [{"name": r.name, "ok": r.ok, "output": r.output} for r in tool_results],
    }
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": DRAFT_SYSTEM},
        *history,
        {"role": "user", "content": question},
        {"role": "system", "content": "Context: " + json.dumps(context)},
    ]
    if problems:
        messages.append(
            {
                "role": "system",
                "content": "Your previous draft was rejected: " + "; ".join(problems),
            }
        )
    return messages
