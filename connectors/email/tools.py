"""Replying by email as an agent tool: an external action, sent only once approved.

The reply is built when it is proposed, with its Message-ID, so the approver sees the
exact email and every attempt to send it carries the same idempotency key. An approver's
edit replaces the body and keeps the headers. Sending goes through the inbox's transport
(an SMTP relay or the Gmail API), whose outbound record makes a retried send deliver at
most once (see outbound.py).
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.agent.tools import ActionContext, ActionRefused, Effect, Tool
from bot.db import Pool
from bot.settings import Settings
from connectors.email.compose import from_storable, render
from connectors.email.gmail_send import delegated_credentials, gmail_service, send_via_gmail
from connectors.email.inboxes import reply_route
from connectors.email.outbound import PermanentSendError, SendResult, load_outbound
from connectors.email.smtp_send import SmtpRelay, send_reply_smtp

REPLY_EMAIL = "reply_email"


class ReplyEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="The whole reply as built, headers included")
    text: str = Field(description="The body; an approver's edit replaces it")
    inbox: str
    conversation_id: int


class DeliveryUnknown(PermanentSendError):
    """An earlier attempt died mid-send and SMTP cannot tell whether it was delivered."""


def reply_email_tool(pool: Pool, settings: Settings) -> Tool:
    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, ReplyEmail)
        try:
            return _send(context, arguments)
        except PermanentSendError as exc:
            raise ActionRefused(str(exc)) from exc

    def _send(context: ActionContext, arguments: ReplyEmail) -> dict[str, Any]:
        message = final_message(arguments)
        with pool.connection() as conn:
            route = reply_route(conn, context.tenant_id, arguments.inbox)
            if route is None:
                raise PermanentSendError(f"{arguments.inbox} is no longer one of our inboxes")
            sender = _sender(settings, route.transport, route.gmail_user)
            result = sender(conn, context.tenant_id, arguments.conversation_id, message)
        if result.status == "unknown":
            raise DeliveryUnknown(
                "an earlier attempt was cut off while the mail server took it; it was not sent "
                "again. Check the recipient's inbox before sending it by hand"
            )
        return {"message_id": result.message_id, "status": result.status}

    def reconcile(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any] | None:
        assert isinstance(arguments, ReplyEmail)
        message_id = str(from_storable(arguments.message)["Message-ID"])
        with pool.connection() as conn:
            outbound = load_outbound(conn, context.tenant_id, message_id)
        if outbound is not None and outbound.status == "sent":
            return {"message_id": message_id, "status": "already_sent"}
        # Not known to be sent: sending again is safe, because the sender itself refuses
        # to resend anything that may have reached the server.
        return None

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, ReplyEmail)
        shown = render(from_storable(arguments.message))
        return f"Reply by email to {', '.join(shown.to)}: {shown.subject}"

    return Tool(
        name=REPLY_EMAIL,
        description="Reply in an email thread (proposed by the email channel itself).",
        effect=Effect.EXTERNAL,
        arguments=ReplyEmail,
        run=run,
        summarize=summarize,
        reconcile=reconcile,
        offered_to_model=False,
    )


def final_message(arguments: ReplyEmail) -> EmailMessage:
    """The reply as it will be sent: as built, with the approved body."""
    message = from_storable(arguments.message)
    if render(message).body.strip() != arguments.text.strip():
        message.set_content(arguments.text)
    return message


Sender = Callable[[Any, int, int, EmailMessage], SendResult]


def _sender(settings: Settings, transport: str, gmail_user: str | None) -> Sender:
    if transport == "gmail":
        if not (settings.gmail_credentials_file and gmail_user):
            raise PermanentSendError(
                "Gmail is this inbox's transport but GMAIL_CREDENTIALS_FILE is not set"
            )
        service = gmail_service(
            credentials=delegated_credentials(settings.gmail_credentials_file, gmail_user),
            api_url=settings.gmail_api_url,
        )
        return lambda conn, tenant_id, conversation_id, message: send_via_gmail(
            conn, service, tenant_id=tenant_id, conversation_id=conversation_id, message=message
        )
    if settings.smtp_relay_host is None:
        raise PermanentSendError("SMTP_RELAY_HOST is not set, so replies cannot be sent")
    relay = SmtpRelay.from_settings(settings)
    return lambda conn, tenant_id, conversation_id, message: send_reply_smtp(
        conn, relay, tenant_id=tenant_id, conversation_id=conversation_id, message=message
    )
