"""The sandbox's mail: what people send to the agent inbox, and what the agent sends out.

Inbound mail is delivered over real SMTP to `chatops smtp`, and the listener's answer
(250, or the refusal) is kept next to the message. Outgoing mail is whatever reached the
`MailSink` the product's SMTP relay settings point at.
"""

from __future__ import annotations

import base64
import smtplib
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Any

from sandbox.mail_sink import MailSink, SinkMessage

SMTP_TIMEOUT = 10.0  # seconds for the product's listener to answer


@dataclass(frozen=True)
class MailView:
    """One email as the mailbox page shows it."""

    id: str
    sent_at: float
    sender: str
    to: str
    subject: str
    body: str
    status: str  # inbound: the listener's answer; outbox: "delivered"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Mailbox:
    """Inbound mail sent to the product's SMTP listener, and the outbox the agent fills."""

    def __init__(self, outbox: MailSink, smtp_host: str, smtp_port: int, agent_inbox: str) -> None:
        self.outbox = outbox
        self.agent_inbox = agent_inbox
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self._lock = threading.Lock()
        self._inbound: list[MailView] = []

    def send_to_agent(self, sender: str, to: str, subject: str, body: str) -> MailView:
        """Deliver one email to the product over SMTP; the result records its answer."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = to
        message["Subject"] = subject
        sender_domain = parseaddr(sender)[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=sender_domain or "sandbox.local")
        message.set_content(body)
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=SMTP_TIMEOUT) as client:
                client.send_message(message)
            status = "250 accepted"
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            status = f"{code} {_text(text)}"
        except smtplib.SMTPResponseException as exc:
            status = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        except OSError as exc:
            status = f"not delivered: {exc}"
        view = MailView(str(message["Message-ID"]), time.time(), sender, to, subject, body, status)
        with self._lock:
            self._inbound.append(view)
        return view

    def inbound(self) -> list[MailView]:
        with self._lock:
            return list(self._inbound)

    def export_state(self) -> dict[str, Any]:
        """Both halves as JSON: what was sent to the agent, and the outbox's raw messages."""
        return {
            "inbound": [view.to_json() for view in self.inbound()],
            "outbox": [
                {**asdict(m), "data": base64.b64encode(m.data).decode("ascii")}
                for m in self.outbox.messages()
            ],
        }

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Start from an `export_state()`: both lists as they were."""
        with self._lock:
            self._inbound = [MailView(**view) for view in state["inbound"]]
        self.outbox.restore(
            [
                SinkMessage(
                    **{
                        **m,
                        "rcpt_tos": tuple(m["rcpt_tos"]),
                        "data": base64.b64decode(m["data"]),
                    }
                )
                for m in state["outbox"]
            ]
        )

    def sent_by_agent(self) -> list[MailView]:
        return [_outbox_view(index, m) for index, m in enumerate(self.outbox.messages())]


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _outbox_view(index: int, message: SinkMessage) -> MailView:
    parsed = message.parsed()
    body_part = parsed.get_body(preferencelist=("plain", "html"))
    body = body_part.get_content() if body_part is not None else ""
    return MailView(
        id=str(parsed.get("Message-ID") or f"outbox-{index}"),
        sent_at=message.received_at,
        sender=str(parsed.get("From", message.mail_from)),
        to=", ".join(message.rcpt_tos),
        subject=str(parsed.get("Subject", "")),
        body=str(body),
        status="delivered",
    )
