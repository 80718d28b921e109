"""The Act step's tools, bound to one request: external calls become pending actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from core.knowledge import AWAITING_APPROVAL, ToolResult
from core.schemas import ToolCall
from core.tools import ActionContext, Effect, Tool, ToolArgumentsError, ToolRegistry
from guardrails.policy import EmailRules
from guardrails.tool_policy import recipient_domains
from review import actions, effects

log = structlog.get_logger(__name__)


@dataclass
class ReviewedToolbox:
    conn: actions.Conn
    registry: ToolRegistry
    context: ActionContext
    conversation_id: int
    run_id: int
    approval_ttl: timedelta
    citations: list[str] = field(default_factory=list)
    # Shared with the screened retriever: a flag raised while reading documents reaches
    # the actions proposed afterwards.
    flags: list[str] = field(default_factory=list)
    force_approval: bool = False  # the request itself was flagged
    # The run's agent template asks that requesters not approve its actions themselves.
    four_eyes: bool = False
    # Rules (allowed domains...) judge real values; the stored payload keeps placeholders.
    restore: Callable[[dict[str, Any]], dict[str, Any]] = lambda arguments: arguments
    # The summary and payload as the tenant's policy lets approvers see them.
    approver_view: Callable[[dict[str, Any]], dict[str, Any]] = lambda proposal: proposal
    # Which arguments name recipients (the tenant's email rules).
    email_rules: EmailRules = field(default_factory=EmailRules)

    def offered(self) -> list[Tool]:
        """The registry's tools, less those whose connector this tenant never connected:
        describing them costs prompt and invites calls that can only fail."""
        rows = self.conn.execute(
            "SELECT connector FROM connector_credentials WHERE tenant_id = %s",
            (self.context.tenant_id,),
        ).fetchall()
        connected = {row["connector"] for row in rows}
        return [
            tool
            for tool in self.registry.offered()
            if tool.connector is None or tool.connector in connected
        ]

    def run(self, call: ToolCall, index: int) -> ToolResult:
        tool = self.registry.get(call.name)
        if tool is None:
            return ToolResult(
                call.name, ok=False, output=f"no tool named {call.name!r} is available"
            )
        try:
            arguments = tool.parse(call.arguments)
        except ToolArgumentsError as exc:
            return ToolResult(call.name, ok=False, output=str(exc))
        refusal = None
        restored = self.restore(arguments.model_dump())
        real = arguments
        if tool.check is not None or tool.preview is not None:
            real = tool.arguments.model_validate(restored)
        if tool.check is not None:
            refusal = tool.check(self.context, real)
        if refusal is not None:
            log.info("tool.refused", tool=tool.name)
            return ToolResult(call.name, ok=False, output=f"Not allowed: {refusal}")
        key = f"run:{self.run_id}:call:{index}"
        flagged = self.force_approval or bool(self.flags)
        if tool.effect is Effect.READ_ONLY or (tool.effect is Effect.INTERNAL and not flagged):
            looked_up = tool.summarize(arguments) if tool.effect is Effect.READ_ONLY else ""
            return ToolResult(
                call.name,
                ok=True,
                # JSON, as the model reads it best and the agent's checks parse it (the ids
                # a result names, who a free/busy result shows busy)
                output=json.dumps(
                    tool.run(self.context, arguments, key), ensure_ascii=False, default=str
                ),
                looked_up=looked_up,
            )
        summary, payload = tool.summarize(arguments), arguments.model_dump()
        reason = call.reason or "no reason given"
        # The model's reason may name people by placeholder too: shown the same way.
        stored = {"summary": summary, "payload": payload, "reason": reason}
        shown = self.approver_view(stored)
        action = actions.propose(
            self.conn,
            tenant_id=self.context.tenant_id,
            conversation_id=self.conversation_id,
            run_id=self.run_id,
            tool=tool.name,
            summary=summary,
            payload=payload,
            requested_by=self.context.requested_by,
            reason=reason,
            citations=self.citations,
            flags=self.flags,
            idempotency_key=key,
            ttl=self.approval_ttl,
            shown=shown if shown != stored else None,
            # Of the real recipients, only their domains: what rules are judged by.
            recipient_domains=recipient_domains(self.email_rules, restored),
        )
        if action["preview"] is None and action["status"] == "pending":
            # Its effect as the system says it is now, just before the card is posted (at
            # the end of the run): read with the real arguments, stored as approvers see it.
            preview = effects.read_for_card(self.conn, tool, self.context, real)
            if preview is not None:
                actions.set_fields(self.conn, action, preview=preview)
        if self.four_eyes:
            # Before the action is announced for approval (end of the run), so no decision
            # can be judged without it.
            self.conn.execute(
                "UPDATE pending_actions SET four_eyes = true WHERE id = %s AND tenant_id = %s",
                (action["id"], self.context.tenant_id),
            )
        log.info("action.proposed", action_id=action["id"], tool=tool.name)
        return ToolResult(
            call.name,
            ok=True,
            output=f"{AWAITING_APPROVAL}: action {action['id']}, {action['summary']}.",
            awaits_approval=True,
        )
