"""`/agent`: the admin slash commands, answered straight from the listener.

Each answer is a few quick queries, well inside Slack's 3-second window, so it goes back
in the ack itself. This module is the one door: it says which subcommand runs which
handler (one module per area next to this one), who may run it, and the help text.
Changing commands are for workspace admins and the tenant's own app admins; everyone
else gets a plain refusal. Every change is audited (review/console/audit_log.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from connectors.credentials import CredentialCipher
from core.agent_template import AgentTemplate
from core.db import AsyncPool
from review.authority import OUTSIDER, Verdict, check_admin, check_member
from review.console import (
    approvals,
    channels,
    connectors,
    digests,
    feedback,
    guardrails,
    inbox,
    rules,
    workspace,
)
from review.console.context import GuardrailStatus, Handler, Invocation, Reply

HELP = """*`/agent` commands*
• `help`: this list
• `status`: backlog, pending approvals, model providers, spend
• `approvals`: pending approvals, with links
• `approval-channel #channel`: where actions wait for approval _(admins)_
• `approvers add|remove @person`: who may approve actions _(admins)_
• `admins [add|remove @person]`: this app's own admins, who can always `pause` _(admins)_
• `four-eyes on|off`: whether requesters may approve their own actions _(admins)_
• `escalate [@person|@group … after 2h | off]`: who undecided actions go to next _(admins)_
• `rules`: the always-allow rules approvers made; `rules revoke N`, `rules days N` _(admins)_
• `digest #channel daily|weekdays 09:00 [to #other|me]`, `digest list`, `digest remove N`: scheduled summaries of a channel _(to a channel: admins; `to me`: anyone in it)_
• `timezone [ZONE]`: the workspace's time zone for digests and "since Monday", e.g. Europe/Paris _(admins to change)_
• `email-threads sender|domain`: who may join an email conversation by replying to it _(admins)_
• `tools allow|deny NAME`: which tools the assistant may use here _(admins)_
• `policy` / `policy set SETTING VALUE`: personal data, toxicity and injection rules _(admins)_
• `pause` / `resume`: stop or restart answering and acting in this workspace _(admins)_
• `connect NAME [TOKEN]`: how to connect HubSpot, Zendesk, Google Calendar or Gmail, then store its credential _(admins)_
• `template [NAME [#channel]]`: the agent template (sales, support, knowledge) used here _(admins)_
• `channel [#channel] [template=… reply=mention|all visibility=public|private collections=a,b ask=@group]`: how I behave in a channel _(admins)_
• `inbox [ADDRESS template=… collections=a,b]`: what the agent inbox answers emails with _(admins)_
• `handoff @person|@group`: who "Ask a human" under an answer hands the thread to _(admins)_
• `feedback`: 👍 / 👎 counts, sources marked wrong or outdated, the handoff target, and the latest 👎, edits and rejections to make golden cases from _(admins)_
• `audit [N]`: the last N audit entries _(admins)_"""


class Access(Enum):
    """Who may run a subcommand. Everyone must first be of the workspace's own
    organisation: in a Slack Connect channel, people of another one can type `/agent`
    too (review/authority.py)."""

    MEMBER = "member"
    ADMIN = "admin"
    ADMIN_TO_CHANGE = "admin to change"  # showing is for members; with arguments, admins
    # Pause must work when Slack is failing: it may use an older admin verdict.
    ADMIN_EVEN_IN_OUTAGE = "admin, even when Slack cannot tell"


@dataclass(frozen=True)
class Command:
    handler: Handler
    access: Access


COMMANDS: dict[str, Command] = {
    "status": Command(workspace.status, Access.MEMBER),
    "approvals": Command(approvals.waiting, Access.MEMBER),
    "approval-channel": Command(approvals.approval_channel, Access.ADMIN),
    "approvers": Command(approvals.approvers, Access.ADMIN),
    "admins": Command(workspace.admins, Access.ADMIN),
    "four-eyes": Command(approvals.four_eyes, Access.ADMIN),
    "escalate": Command(rules.escalate, Access.ADMIN),
    "rules": Command(rules.rules, Access.ADMIN_TO_CHANGE),
    # Anyone in a channel may have its digest sent to themselves; the handler asks the
    # admin check below for a digest to a channel and for removing someone else's.
    "digest": Command(digests.digest, Access.MEMBER),
    "timezone": Command(digests.timezone, Access.ADMIN_TO_CHANGE),
    "email-threads": Command(connectors.email_threads, Access.ADMIN),
    "tools": Command(guardrails.tools, Access.ADMIN),
    "policy": Command(guardrails.policy, Access.ADMIN),
    "pause": Command(workspace.pause, Access.ADMIN_EVEN_IN_OUTAGE),
    "resume": Command(workspace.resume, Access.ADMIN),
    "connect": Command(connectors.connect, Access.ADMIN),
    "template": Command(channels.template, Access.ADMIN),
    "channel": Command(channels.channel, Access.ADMIN),
    "inbox": Command(inbox.inbox, Access.ADMIN),
    "handoff": Command(feedback.handoff, Access.ADMIN),
    "feedback": Command(feedback.feedback, Access.ADMIN),
    "audit": Command(workspace.audit, Access.ADMIN),
}


async def run_agent_command(
    pool: AsyncPool,
    client: AsyncWebClient,
    tenant_id: int,
    command: dict[str, Any],
    guardrails: GuardrailStatus,
    credentials: CredentialCipher,
    templates: Mapping[str, AgentTemplate] | None = None,
    model: str | None = None,
) -> Reply:
    """`model` is what `status` says about the language model (`review.model_status`)."""
    words = (command.get("text") or "").split()
    name, args = (words[0].lower(), words[1:]) if words else ("help", [])
    user = command["user_id"]
    # Every subcommand, even help.
    member = await check_member(pool, client, tenant_id, user)
    if not member.allowed:
        return Reply(_refusal(member, name))
    found = COMMANDS.get(name)
    if found is None:
        return Reply(HELP if name == "help" else f"I don't know `{name}`.\n{HELP}")
    if found.access is not Access.MEMBER and (found.access is not Access.ADMIN_TO_CHANGE or args):
        emergency = found.access is Access.ADMIN_EVEN_IN_OUTAGE
        admin = await check_admin(pool, client, tenant_id, user, emergency=emergency)
        if not admin.allowed:
            return Reply(_refusal(admin, name))

    async def admin_check() -> Verdict:
        return await check_admin(pool, client, tenant_id, user)

    invocation = Invocation(
        pool=pool,
        client=client,
        tenant_id=tenant_id,
        user=user,
        channel=command.get("channel_id", ""),
        guardrails=guardrails,
        credentials=credentials,
        templates=templates or {},
        model=model,
        check_admin=admin_check,
    )
    return await found.handler(invocation, args)


def _refusal(verdict: Verdict, name: str) -> str:
    if verdict.slack_unavailable:
        return verdict.reason
    if verdict.reason == OUTSIDER:
        return "Only people of this workspace's own organisation can use `/agent`."
    return f"Only workspace admins and this app's admins can use `/agent {name}`."
