"""One run of the agent for a request from any channel: the part every channel shares.

A Slack mention and an email differ in how the request arrives and how the answer leaves
(a reply in the thread; an email that waits for approval). Everything between is here,
so every channel gets the agent template's prompt, tools and four-eyes rule, reviewers'
corrections, the knowledge scoping, the guardrails' screens and the draft screen the same
way. The channel adapters are `bot.agent.run_request` (Slack threads and the assistant
panel) and `bot.agent.answer_email` (the agent inbox).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import Connection
from slack_sdk import WebClient

from bot.agent.draft_preview import DraftPreview
from bot.agent.loop import AgentInput, Outcome, run_agent
from bot.agent.prompts import Example, Turn
from bot.agent.runs import WorkerDeps, usage_recorder
from bot.agent.screening import screen_run
from bot.agent.steps import StepLog
from bot.agent.templates_in_use import TemplateRun
from core.tools import ActionContext
from guardrails.facade import ScreenedDraft
from review import feedback
from review.toolbox import ReviewedToolbox

# Who wrote the question, for the injection screen: a colleague in Slack or anyone at all
# by email.
Source = Literal["requester", "email"]


def admins_notifier(client: WebClient, approval_channel_id: str | None) -> Callable[[str], None]:
    """How a run tells the tenant's admins something (a budget nearly spent): in the
    approval channel; without one, nowhere."""

    def notify(text: str) -> None:
        if approval_channel_id:
            client.chat_postMessage(channel=approval_channel_id, text=text)

    return notify


@dataclass(frozen=True)
class RunRequest:
    """One request, as the run sees it whatever channel it came from."""

    tenant_id: int
    conversation_id: int
    run_id: int
    bot_token: str
    requested_by: str  # a Slack user id, or the sender's email address
    question: str
    history: list[Turn]
    # The Slack channel the tenant's tool rules are judged for; None for email.
    channel: str | None
    source: Source
    # What the reply will be read as, added to the template's prompt (email: plain text).
    reply_format: str | None = None
    action_token: str | None = None


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    # The guardrails' verdict on a model-written answer; None when no model wrote it
    # (offline, blocked before the model, or the run failed).
    draft: ScreenedDraft | None = None
    # Why this run's actions need a person (a possible injection, a screen's flag).
    flags: list[str] = field(default_factory=list)
    blocked: bool = False  # the guardrails stopped the request before any model call


def run_for_channel(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    request: RunRequest,
    applied: TemplateRun,
    *,
    notify_admins: Any,
    preview: DraftPreview | None = None,
) -> RunResult:
    """Screen the request, run the agent loop under the template, and screen its draft."""
    tenant_id, conversation_id = request.tenant_id, request.conversation_id
    template_name = applied.template.name if applied.template else None
    corrections = [
        Example(c.original, c.corrected, c.reason)
        for c in feedback.relevant(conn, tenant_id, request.question, template_name)
    ]

    def make_toolbox(flags: list[str], force_approval: bool) -> ReviewedToolbox:
        return ReviewedToolbox(
            conn,
            applied.tools,
            ActionContext(
                tenant_id,
                request.bot_token,
                requested_by=request.requested_by,
                action_token=request.action_token,
            ),
            conversation_id=conversation_id,
            run_id=request.run_id,
            approval_ttl=applied.approval_ttl,
            four_eyes=applied.four_eyes,
            flags=flags,
            force_approval=force_approval,
            restore=lambda arguments: deps.guardrails.restore(
                tenant_id, str(conversation_id), arguments
            ),
            approver_view=lambda proposal: deps.guardrails.approver_payload(
                tenant_id, str(conversation_id), proposal
            ),
            email_rules=deps.guardrails.policy(tenant_id).tools.email,
        )

    screened = screen_run(
        deps.guardrails,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        question=request.question,
        history=request.history,
        corrections=corrections,
        llm=applied.llm,
        retriever=applied.retriever,
        make_toolbox=make_toolbox,
        channel=request.channel,
        source=request.source,
        notify_admins=notify_admins,
    )
    if screened.blocked_notice is not None:
        return RunResult(
            Outcome(screened.blocked_notice, "answered", "blocked by guardrails"),
            flags=screened.flags,
            blocked=True,
        )
    outcome = run_agent(
        AgentInput(
            tenant_id,
            screened.question,
            screened.history,
            screened.corrections,
            instructions=_instructions(applied.instructions, request.reply_format),
        ),
        llm=screened.llm,
        retriever=screened.retriever,
        tools=screened.toolbox,
        steps=StepLog.load(
            conn, request.run_id, tenant_id, deps.max_steps, observer=deps.step_observer
        ),
        on_call=usage_recorder(conn, tenant_id, request.run_id, deps.prices, deps.metrics),
        preview=preview,
        grounding=deps.grounding,
    )
    draft = None
    if outcome.status == "answered" and deps.llm is not None:
        draft = deps.guardrails.screen_draft(tenant_id, str(conversation_id), outcome.text)
    return RunResult(outcome, draft, screened.flags)


def _instructions(template: str | None, reply_format: str | None) -> str | None:
    parts = [part.strip() for part in (template, reply_format) if part and part.strip()]
    return "\n\n".join(parts) or None
