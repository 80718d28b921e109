"""An email request: the agent drafts the reply, and the reply waits for approval.

Unlike Slack, nothing is posted in the customer's thread until a person approves: the
draft becomes a `reply_email` pending action in the tenant's approval channel, shown as
the email it will be, and is sent (once) when approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import structlog
from psycopg import Connection
from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.agent.answer_blocks import as_json
from bot.agent.run_service import RunRequest, admins_notifier, run_for_channel
from bot.agent.runs import WorkerDeps, mark_failed, start_run
from bot.agent.templates_in_use import apply_to_run
from connectors.email.compose import OriginalEmail, build_reply, render, to_storable
from connectors.email.flood_gate import admit
from connectors.email.history import thread_history
from connectors.email.inbound_store import read_arrived
from connectors.email.inboxes import inbox_agent
from connectors.email.reply_limit import reply_allowed
from connectors.email.reply_policy import ReplyAddressing, address_reply
from connectors.email.reply_text import email_body, greeted_name, plain_text
from connectors.email.tools import REPLY_EMAIL, seal_reply
from core.store import requests
from guardrails.at_rest import default_masker
from guardrails.entities import EMAIL, PERSON
from review import actions, tenant_settings
from review.conversation_settings import ChannelSettings, effective
from review.email_digest import show_digest
from review.execute import execute_action
from review.pending import announce_pending_actions, run_allowed

log = structlog.get_logger(__name__)

# Added to the template's prompt: the reply is an email to someone outside the company,
# read in a mail client, not a Slack message.
# The greeting and sign-off are added afterwards (connectors/email/reply_text.py), so the
# model never invents a name to sign with.
EMAIL_REPLY_FORMAT = (
    "This reply is an email to the person who wrote in, who may be a customer outside the "
    "company. Write the answer as a plain-text email body: plain sentences, no greeting and "
    "no sign-off (they are added for you), no Slack formatting (no *bold*, no emoji codes), "
    "and never mention internal document titles, tools or colleagues' names."
)


def read_email(conn: Connection[dict[str, Any]], deps: WorkerDeps, request_id: int) -> None:
    """Read the message behind an email request the listener stored as it arrived:
    parsed, screened for what the tenant masks for good, threaded (inbound_store.py)."""
    read = read_arrived(
        conn,
        request_id,
        cipher=deps.mail_cipher,
        limits=deps.email_parse_limits,
        masker=default_masker(),
    )
    if read is None:
        return
    if read.split:
        # Someone named a thread they took no part in: a hijack, or a forward.
        log.warning("email.thread_not_joined", conversation_id=read.conversation_id)
    log.info(
        "email.read",
        request_id=request_id,
        conversation_id=read.conversation_id,
        status=read.status,
    )


def answer_email(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    request: dict[str, Any],
    failed_reason: str | None,
) -> None:
    payload = request["payload"]
    tenant_id, request_id = request["tenant_id"], request["id"]
    conversation_id: int = payload["conversation_id"]
    structlog.contextvars.bind_contextvars(
        tenant_id=tenant_id, request_id=request_id, conversation_id=conversation_id
    )
    try:
        if failed_reason is not None:
            mark_failed(conn, request_id, failed_reason)
            return
        settings = tenant_settings.load(conn, tenant_id)
        if settings.paused:
            _finish(conn, request_id, "ignored", "the assistant is paused in this workspace")
            return
        if not reply_allowed(
            conn, tenant_id, conversation_id, per_hour=deps.email_replies_per_hour
        ):
            _finish(conn, request_id, "ignored", "reply limit for this thread reached")
            return
        # A flood of mail waits on one digest card instead of a card each (flood_gate.py).
        gate = admit(
            conn,
            tenant_id=tenant_id,
            request_id=request_id,
            inbox=payload["inbox"],
            sender=_sender(payload),
            subject=payload.get("subject") or "",
            limits=deps.email_flood,
        )
        if gate.outcome == "held":
            assert gate.digest_id is not None
            show_digest(
                conn,
                deps.slack_client(request["bot_token"]),
                tenant_id=tenant_id,
                digest_id=gate.digest_id,
                channel=settings.approval_channel_id,
                limits=deps.email_flood,
            )
            _finish(conn, request_id, "ignored", gate.reason)
            return
        # Who the reply may go to, decided before any model call (reply_policy.py).
        original = OriginalEmail.from_payload(payload)
        addressing = address_reply(conn, tenant_id, conversation_id, original)
        refusal = addressing.refusal or _outbound_refusal(
            deps, tenant_id, conversation_id, addressing
        )
        if refusal is not None:
            _finish(conn, request_id, "ignored", refusal)
            return
        client = deps.slack_client(request["bot_token"])
        if deps.llm is None:
            # Offline, nothing can write a reply: a customer must never get "Offline mode:
            # ..." and internal passages. A person answers; the card says so.
            leave_for_a_person(client, settings.approval_channel_id, payload)
            _finish(conn, request_id, "done", "offline mode: left for a person to answer")
            return
        run = start_run(conn, tenant_id, conversation_id, request_id, deps.llm is not None)
        structlog.contextvars.bind_contextvars(run_id=run["id"])
        # The inbox's template and collections, as a channel's would be: customers are
        # outside readers, so by default only the outside readers' collection is searched.
        inbox = inbox_agent(conn, tenant_id, payload["inbox"])
        applied = apply_to_run(
            conn,
            deps,
            tenant_id,
            run["id"],
            effective(
                ChannelSettings(template=inbox.template, collections=inbox.collections),
                tenant_template=None,
                shared=True,
                templates=deps.templates,
            ),
            channel=None,
            approval_ttl=settings.approval_ttl,
        )
        result = run_for_channel(
            conn,
            deps,
            RunRequest(
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                run_id=run["id"],
                bot_token=request["bot_token"],
                requested_by=_sender(payload),
                question=_question(payload),
                history=_history(conn, tenant_id, payload),
                channel=None,
                source="email",
                reply_format=EMAIL_REPLY_FORMAT,
            ),
            applied,
            notify_admins=admins_notifier(client, settings.approval_channel_id),
        )
        if result.blocked:
            _finish(conn, request_id, "ignored", "blocked by guardrails")
            return
        outcome = result.outcome
        if outcome.status != "answered":
            mark_failed(conn, request_id, outcome.reason or "could not draft a reply")
            return
        draft = result.draft
        assert draft is not None, "a model wrote this answer, so the guardrails screened it"
        if draft.action == "block":
            mark_failed(conn, request_id, "the drafted reply did not pass the guardrails")
            return
        flags = result.flags + [f.for_people() for f in draft.flags] + list(addressing.notes)
        # Written for Slack (mrkdwn, citation numbers, internal source titles): made into
        # the plain-text email the customer reads, with a greeting and a sign-off.
        greeted = _sender_name(payload, addressing)
        body = email_body(
            draft.text_for_people,
            recipient_name=greeted,
            signature=_signature(conn, tenant_id),
        )
        reply = build_reply(original, body=body, to=addressing.to)
        tool = deps.tools.get(REPLY_EMAIL)
        assert tool is not None, "the worker registers reply_email"
        arguments = tool.arguments.model_validate(
            {
                "message": to_storable(reply),
                "text": body,
                "inbox": payload["inbox"],
                "conversation_id": conversation_id,
                "original_sender": addressing.sender,
            }
        )
        proposal = _for_approvers(
            deps,
            tenant_id,
            conversation_id,
            reply,
            {
                "summary": tool.summarize(arguments),
                "payload": arguments.model_dump(),
                "reason": f"Answering the email '{payload.get('subject') or '(no subject)'}'",
                "requested_by": _sender(payload),
            },
            known=_personal_values(payload, reply, greeted),
        )
        stored_payload = proposal.stored["payload"]
        if deps.mail_cipher is not None:
            stored_payload = seal_reply(deps.mail_cipher, tenant_id, stored_payload)
        actions.propose(
            conn,
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            run_id=run["id"],
            tool=REPLY_EMAIL,
            summary=proposal.stored["summary"],
            payload=stored_payload,
            requested_by=_sender(payload),
            reason=proposal.stored["reason"],
            citations=[],
            flags=flags,
            idempotency_key=f"run:{run['id']}:reply",
            ttl=settings.approval_ttl,
            recipient_domains=sorted(
                {a.rsplit("@", 1)[-1].lower() for a in addressing.addresses if "@" in a}
            ),
            shown=proposal.shown,
        )
        announce_pending_actions(conn, client, settings, run["id"])
        # A reply an "always allow" rule covers is sent now, once as any approval.
        run_allowed(
            conn,
            tenant_id,
            run["id"],
            lambda action_id: execute_action(
                conn, deps.slack_client, deps.tools, deps.guardrails, action_id
            ),
        )
        conn.execute(
            "UPDATE agent_runs SET status = 'answered', finished_at = now() WHERE id = %s",
            (run["id"],),
        )
        _finish(conn, request_id, "done", None)
        log.info("email.reply_proposed", run_id=run["id"])
    finally:
        structlog.contextvars.unbind_contextvars(
            "tenant_id", "request_id", "run_id", "conversation_id"
        )


@dataclass(frozen=True)
class ReplyProposal:
    """A reply's action as stored (personal data as the conversation's placeholders,
    unless approvers see real values) and as approvers see it (the email's headers and
    body; the summary, reason and requester too when they differ from the stored ones)."""

    stored: dict[str, Any]  # summary, payload, reason
    shown: dict[str, Any]  # pending_actions.shown


def _for_approvers(
    deps: WorkerDeps,
    tenant_id: int,
    conversation_id: int,
    reply: EmailMessage,
    proposal: dict[str, Any],
    known: list[tuple[str, str]],
) -> ReplyProposal:
    """The reply's summary, arguments and reason as stored and as approvers see them, by
    the tenant's PII policy like any other action: the customer's name and address (and
    whatever else personal the body holds) become the conversation's placeholders, shown
    partly masked (a***@customer.example, A.) or hidden, and restored when the approved
    reply is sent. The email itself (`message`, headers and all) keeps the real values:
    it is what is sent, sealed at rest, and no card reads it."""
    key = str(conversation_id)
    arguments = proposal["payload"]
    rendered = render(reply)
    clear = {
        "summary": proposal["summary"],
        "reason": proposal["reason"],
        "requested_by": proposal["requested_by"],
        "text": arguments["text"],
        "original_sender": arguments["original_sender"],
        # From is the tenant's own inbox, not a customer's data: shown as it is, below.
        "headers": {
            "to": rendered.to,
            "cc": rendered.cc,
            "subject": rendered.subject,
        },
    }
    hidden = deps.guardrails.hide_from_approvers(tenant_id, key, clear, known)
    if hidden == clear:
        # Approvers see real values: the email as built, read from the view rather than
        # from the message, which is sealed.
        headers = {"from": rendered.from_, **clear["headers"]}
        return ReplyProposal(proposal, {"payload": {"text": clear["text"], "headers": headers}})
    stored = {
        "summary": hidden["summary"],
        "reason": hidden["reason"],
        "payload": {
            **arguments,
            "text": hidden["text"],
            "original_sender": hidden["original_sender"],
        },
    }
    shown = deps.guardrails.approver_payload(tenant_id, key, hidden)
    return ReplyProposal(
        stored,
        {
            "summary": shown["summary"],
            "reason": shown["reason"],
            "requested_by": shown["requested_by"],
            # What the card shows of the email: its headers and body, never the message.
            "payload": {
                "text": shown["text"],
                "headers": {"from": rendered.from_, **shown["headers"]},
            },
        },
    )


def _personal_values(
    payload: dict[str, Any], reply: EmailMessage, greeted: str
) -> list[tuple[str, str]]:
    """The names and addresses of the people the reply is about: its recipients, the
    sender of the email answered, and the name its greeting uses."""
    people = [
        (str(a.display_name), str(a.addr_spec))
        for header in ("To", "Cc")
        for a in getattr(reply.get(header), "addresses", ())
    ]
    sender = payload.get("from") or {}
    people.append((str(sender.get("name") or ""), str(sender.get("address") or "")))
    known = [(EMAIL, address) for _, address in people if address]
    known += [(PERSON, name) for name, _ in people if name and "@" not in name]
    if greeting := greeted_name(greeted):
        known.append((PERSON, greeting))
    return known


def _outbound_refusal(
    deps: WorkerDeps, tenant_id: int, conversation_id: int, addressing: ReplyAddressing
) -> str | None:
    """The tenant's guardrail e-mail rules (allowed domains, recipients), applied to the
    reply's recipients as to any e-mail the agent would send."""
    check = deps.guardrails.check_tool(
        tenant_id,
        str(conversation_id),
        REPLY_EMAIL,
        {"to": addressing.addresses},
        channel=None,
    )
    return None if check.decision.allowed else check.decision.reason_for_people


OFFLINE_NOTE = (
    "No language model is configured (offline mode), so no reply was drafted and nothing "
    "will be sent. Please answer it from the inbox yourself. Whoever runs the assistant can "
    "set OPENAI_BASE_URL to a model (the sandbox uses its demo model unless started with "
    "--offline); `/agent status` shows the mode."
)
NOTE_BODY_CHARS = 2_500


def leave_for_a_person(client: Any, channel: str | None, payload: dict[str, Any]) -> None:
    """An internal note in the approval channel: this email needs a person's answer."""
    if not channel:
        return
    sender = payload.get("from") or {}
    who = sender.get("address") or "unknown sender"
    if sender.get("name"):
        who = f"{sender['name']} <{who}>"
    subject = payload.get("subject") or "(no subject)"
    body = plain_text(_question(payload))
    if len(body) > NOTE_BODY_CHARS:
        body = body[:NOTE_BODY_CHARS] + "…"
    fields = "\n".join(
        f"*{name}:* {_escape(value)}"
        for name, value in (("From", who), ("To", payload.get("inbox") or ""), ("Subject", subject))
        if value
    )
    headline = ":envelope_with_arrow: *Internal note: an email for a person to answer*"
    client.chat_postMessage(
        channel=channel,
        text=f"Internal note: an email for a person to answer: {_escape(subject)}",
        blocks=as_json(
            [
                SectionBlock(text=MarkdownTextObject(text=headline)),
                DividerBlock(),
                SectionBlock(text=MarkdownTextObject(text=fields)),
                SectionBlock(text=PlainTextObject(text=body, emoji=False)),
                DividerBlock(),
                ContextBlock(elements=[MarkdownTextObject(text=OFFLINE_NOTE)]),
            ]
        ),
        unfurl_links=False,
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sender_name(payload: dict[str, Any], addressing: ReplyAddressing) -> str:
    """The name to greet: the sender's, when the reply goes back to them alone."""
    sender = payload.get("from") or {}
    addresses = [a.lower() for a in addressing.addresses]
    if addresses == [str(sender.get("address") or "").lower()]:
        return str(sender.get("name") or "")
    return ""


def _signature(conn: Connection[dict[str, Any]], tenant_id: int) -> str:
    row = conn.execute("SELECT name FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    name = str(row["name"]).strip() if row and row["name"] else ""
    return f"The {name} team" if name else "The support team"


def _question(payload: dict[str, Any]) -> str:
    text = (payload.get("text") or "").strip()
    if text:
        return text
    attachments = " ".join(a.get("text") or "" for a in payload.get("attachments") or [])
    return f"{payload.get('subject') or ''}\n{attachments}".strip() or "(empty email)"


def _history(
    conn: Connection[dict[str, Any]], tenant_id: int, payload: dict[str, Any]
) -> list[dict[str, str]]:
    return thread_history(
        conn, tenant_id, payload["conversation_id"], before_message_id=payload["message_id"]
    )


def _sender(payload: dict[str, Any]) -> str:
    sender = payload.get("from") or {}
    return str(sender.get("address") or "unknown sender")


def _finish(
    conn: Connection[dict[str, Any]],
    request_id: int,
    status: Literal["done", "ignored"],
    reason: str | None,
) -> None:
    requests.finish(conn, request_id, status, reason)
