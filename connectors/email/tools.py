"""Replying by email as an agent tool: an external action, sent only once approved.

The reply is built when it is proposed, with its Message-ID, so the approver sees the
exact email and every attempt to send it carries the same idempotency key. An approver's
edit replaces the body and keeps the headers. Sending goes through the inbox's transport
(an SMTP relay or the Gmail API), whose outbound record makes a retried send deliver at
most once (see outbound.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from connectors.email.compose import build_new_email, from_storable, render
from connectors.email.gmail_send import delegated_credentials, gmail_service, send_via_gmail
from connectors.email.inboxes import (
    disallowed_recipients,
    domain_of,
    normalize_address,
    reply_route,
)
from connectors.email.outbound import PermanentSendError, SendResult, envelope_of, load_outbound
from connectors.email.raw_mail import RawMailCipher
from connectors.email.reply_policy import refused_recipients
from connectors.email.smtp_send import SmtpRelay, send_reply_smtp
from connectors.email.threads import start_conversation
from core.db import Pool
from core.metrics import Metrics
from core.settings import Settings
from core.tools import ActionContext, ActionRefused, Effect, Tool
from guardrails.vault import PLACEHOLDER

REPLY_EMAIL = "reply_email"


class ReplyEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="The whole reply as built, headers included (base64)")
    text: str = Field(description="The body; an approver's edit replaces it")
    inbox: str
    conversation_id: int
    # Who wrote the email answered: the summary says so when the reply goes elsewhere.
    original_sender: str = ""
    # The message is sealed at rest (AES-GCM, under the key inbound mail's raw bytes are
    # sealed with) and opened only to send it: it holds the customer's name and address,
    # which approvers may only see masked. Replies proposed before sealing keep it clear.
    sealed: bool = False


def seal_reply(cipher: RawMailCipher, tenant_id: int, arguments: dict[str, Any]) -> dict[str, Any]:
    """The reply's arguments with its message sealed, for its pending action."""
    if arguments.get("sealed") or not arguments.get("message"):
        return arguments
    raw = base64.b64decode(arguments["message"], validate=True)
    sealed = cipher.seal(tenant_id, _sealed_id(arguments["conversation_id"]), raw)
    return {**arguments, "message": base64.b64encode(sealed).decode("ascii"), "sealed": True}


def reply_message(cipher: RawMailCipher, tenant_id: int, arguments: ReplyEmail) -> EmailMessage:
    """The reply as built (Message-ID and all), opened when it was stored sealed."""
    if not arguments.sealed:
        return from_storable(arguments.message)
    raw = cipher.open(
        tenant_id, _sealed_id(arguments.conversation_id), base64.b64decode(arguments.message)
    )
    return from_storable(base64.b64encode(raw).decode("ascii"))


def seal_stored_replies(conn: Any, cipher: RawMailCipher, batch: int = 200) -> int:
    """Seal the message of reply_email actions proposed before replies were sealed
    (their payload and original payload); returns how many actions. In batches, each row
    once (`chatops migrate` runs it)."""
    sealed, after = 0, 0
    while True:
        rows = conn.execute(
            """SELECT id, tenant_id, payload, original_payload FROM pending_actions
                WHERE tool = %s AND id > %s
                  AND NOT (coalesce((payload->>'sealed')::boolean, false)
                           AND coalesce((original_payload->>'sealed')::boolean, false))
                ORDER BY id LIMIT %s""",
            (REPLY_EMAIL, after, batch),
        ).fetchall()
        if not rows:
            return sealed
        for row in rows:
            action_id, tenant_id, payload, original = (
                (row["id"], row["tenant_id"], row["payload"], row["original_payload"])
                if isinstance(row, dict)
                else tuple(row)
            )
            after = action_id
            try:
                payload_sealed = seal_reply(cipher, tenant_id, payload)
                original_sealed = seal_reply(cipher, tenant_id, original)
            except (binascii.Error, KeyError, TypeError, ValueError):
                continue  # not a message this product stored: left for a person to look at
            updated = conn.execute(
                """UPDATE pending_actions SET payload = %s, original_payload = %s
                    WHERE id = %s AND payload = %s AND original_payload = %s""",
                (
                    Jsonb(payload_sealed),
                    Jsonb(original_sealed),
                    action_id,
                    Jsonb(payload),
                    Jsonb(original),
                ),
            )
            sealed += updated.rowcount


def _sealed_id(conversation_id: int) -> str:
    # Bound to its tenant and email thread: a sealed reply copied elsewhere does not open.
    return f"reply:{conversation_id}"


class DeliveryUnknown(PermanentSendError):
    """An earlier attempt died mid-send and SMTP cannot tell whether it was delivered."""


def reply_email_tool(pool: Pool, settings: Settings, metrics: Metrics | None = None) -> Tool:
    cipher = RawMailCipher.from_settings(settings)

    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, ReplyEmail)
        try:
            return _send(context, arguments)
        except PermanentSendError as exc:
            raise ActionRefused(str(exc)) from exc

    def _send(context: ActionContext, arguments: ReplyEmail) -> dict[str, Any]:
        if PLACEHOLDER.search(arguments.text):
            # A name or address approvers saw masked whose real value is gone (the vault
            # forgot it): the customer must never read <PERSON_1>.
            raise PermanentSendError(
                "a name or address in the reply could not be filled back in, so it was not "
                "sent; please answer this email from the inbox yourself"
            )
        message = final_message(arguments, reply_message(cipher, context.tenant_id, arguments))
        with pool.connection() as conn:
            route = reply_route(conn, context.tenant_id, arguments.inbox)
            if route is None:
                raise PermanentSendError(f"{arguments.inbox} is no longer one of our inboxes")
            # Checked again at the last moment: an inbox added or a domain disallowed since.
            refused = refused_recipients(
                conn, context.tenant_id, arguments.conversation_id, envelope_of(message)[1]
            )
            if refused:
                raise PermanentSendError(
                    "this workspace may not write to " + ", ".join(refused) + " any more"
                )
            sender = _counted(
                _sender(settings, route.transport, route.gmail_user), route.transport, metrics
            )
            result = sender(conn, context.tenant_id, arguments.conversation_id, message)
        if result.status == "unknown":
            raise DeliveryUnknown(
                "an earlier attempt was cut off while the mail server took it; it was not sent "
                "again. Check the recipient's inbox before sending it by hand"
            )
        return {"message_id": result.message_id, "status": result.status}

    def reconcile(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any] | None:
        assert isinstance(arguments, ReplyEmail)
        message = reply_message(cipher, context.tenant_id, arguments)
        message_id = str(message["Message-ID"])
        with pool.connection() as conn:
            outbound = load_outbound(conn, context.tenant_id, message_id)
        if outbound is not None and outbound.status == "sent":
            return {"message_id": message_id, "status": "already_sent"}
        # Not known to be sent: sending again is safe, because the sender itself refuses
        # to resend anything that may have reached the server.
        return None

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, ReplyEmail)
        if arguments.sealed:
            return "Reply by email"  # summarized when proposed, before it was sealed
        shown = render(from_storable(arguments.message))
        sender = normalize_address(arguments.original_sender)
        if sender and [normalize_address(a) for a in _addresses(shown.to)] != [sender]:
            # Said where approvers look first: this reply does not simply answer its sender.
            return (
                f"Reply by email to {', '.join(shown.to)} (not the sender, "
                f"{arguments.original_sender}): {shown.subject}"
            )
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


def final_message(arguments: ReplyEmail, message: EmailMessage) -> EmailMessage:
    """The reply as it will be sent: `message` as built, with the approved body."""
    if render(message).body.strip() != arguments.text.strip():
        message.set_content(arguments.text)
    return message


def _addresses(formatted: list[str]) -> list[str]:
    return [address for _, address in getaddresses(formatted)]


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


def _counted(sender: Sender, transport: str, metrics: Metrics | None) -> Sender:
    """`sender`, counting what it hands to the transport in `chatops_emails_sent`."""
    if metrics is None:
        return sender

    def send(conn: Any, tenant_id: int, conversation_id: int, message: EmailMessage) -> SendResult:
        try:
            result = sender(conn, tenant_id, conversation_id, message)
        except Exception:
            metrics.emails_sent.labels(transport, "failed").inc()
            raise
        metrics.emails_sent.labels(transport, result.status).inc()
        return result

    return send


SEND_EMAIL = "send_email"
MAX_RECIPIENTS = 10


class SendEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(
        min_length=1, max_length=MAX_RECIPIENTS, description="Recipient addresses"
    )
    subject: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, description="The body of the email")


def send_email_tool(pool: Pool, settings: Settings, metrics: Metrics | None = None) -> Tool:
    """New outbound mail to any address in a domain the tenant allows."""

    def check(context: ActionContext, arguments: BaseModel) -> str | None:
        assert isinstance(arguments, SendEmail)
        with pool.connection() as conn:
            refused = disallowed_recipients(conn, context.tenant_id, arguments.to)
            sender = _outbound_inbox(conn, context.tenant_id)
        if refused:
            return "this workspace does not allow new email to " + ", ".join(refused)
        if sender is None:
            return "this workspace has no email inbox to send from"
        return None

    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, SendEmail)
        with pool.connection() as conn:
            inbox = _outbound_inbox(conn, context.tenant_id)
            if inbox is None:
                raise ActionRefused("this workspace has no email inbox to send from")
            message = build_new_email(
                from_address=inbox, to=arguments.to, subject=arguments.subject, body=arguments.text
            )
            # Derived from the action's idempotency key, so every attempt is the same email.
            del message["Message-ID"]
            message["Message-ID"] = _message_id_for(key, inbox)
            conversation_id = start_conversation(
                conn, context.tenant_id, str(message["Message-ID"])
            )
            route = reply_route(conn, context.tenant_id, inbox)
            assert route is not None
            try:
                sender = _counted(
                    _sender(settings, route.transport, route.gmail_user), route.transport, metrics
                )
                result = sender(conn, context.tenant_id, conversation_id, message)
            except PermanentSendError as exc:
                raise ActionRefused(str(exc)) from exc
        if result.status == "unknown":
            raise ActionRefused("an earlier attempt was cut off mid-send; it was not sent again")
        return {"message_id": result.message_id, "status": result.status}

    def reconcile(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any] | None:
        with pool.connection() as conn:
            inbox = _outbound_inbox(conn, context.tenant_id)
            outbound = inbox and load_outbound(conn, context.tenant_id, _message_id_for(key, inbox))
        if outbound and outbound.status == "sent":
            return {"message_id": outbound.message_id, "status": "already_sent"}
        return None

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, SendEmail)
        return f"Send an email to {', '.join(arguments.to)}: {arguments.subject}"

    return Tool(
        name=SEND_EMAIL,
        description=(
            "Send a new email from the company's inbox. Only to allowed domains; needs a "
            "person's approval before it is sent."
        ),
        effect=Effect.EXTERNAL,
        arguments=SendEmail,
        run=run,
        summarize=summarize,
        reconcile=reconcile,
        check=check,
    )


def _outbound_inbox(conn: Any, tenant_id: int) -> str | None:
    row = conn.execute(
        """SELECT address FROM tenant_inboxes WHERE tenant_id = %s AND kind = 'address'
           ORDER BY id LIMIT 1""",
        (tenant_id,),
    ).fetchone()
    return str(row["address"]) if row else None


def _message_id_for(key: str, inbox: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}.chatops@{domain_of(inbox)}>"
