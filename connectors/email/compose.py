"""Build the agent's outgoing mail: replies that thread correctly, and new messages.

The Message-ID is generated here, before anything is sent, and is the idempotency key of
the send (see outbound.py): build a message once, store it (or its bytes) with the
approval, and hand that same message to the sender on every attempt.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr
from typing import Any

from connectors.email.inboxes import domain_of, normalize_address

REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|vs)\s*(\[\d+\])?\s*:", re.IGNORECASE)
MAX_REFERENCES = 20  # RFC 5322 3.6.4 lets a long chain be trimmed, keeping the root


@dataclass(frozen=True)
class Participant:
    name: str
    address: str

    def formatted(self) -> str:
        return formataddr((self.name, self.address)) if self.name else self.address


@dataclass(frozen=True)
class OriginalEmail:
    """What a reply needs to know about the message it answers."""

    message_id: str
    references: tuple[str, ...]
    subject: str
    sender: Participant | None
    reply_to: tuple[Participant, ...]
    to: tuple[Participant, ...]
    cc: tuple[Participant, ...]
    inbox: str  # the address it was sent to: replies come from there

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> OriginalEmail:
        """From an email request's stored payload (connectors/email/payload.py)."""
        return cls(
            message_id=payload["message_id"],
            references=tuple(payload.get("references") or ()),
            subject=payload.get("subject") or "",
            sender=_participant(payload.get("from")),
            reply_to=_participants(payload.get("reply_to")),
            to=_participants(payload.get("to")),
            cc=_participants(payload.get("cc")),
            inbox=payload["inbox"],
        )


def new_message_id(domain: str) -> str:
    """A globally unique Message-ID at our own domain (RFC 5322 3.6.4)."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def reply_subject(subject: str) -> str:
    return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def reply_references(original: OriginalEmail) -> list[str]:
    chain = [*original.references, original.message_id]
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return chain


def build_reply(
    original: OriginalEmail,
    *,
    body: str,
    from_name: str = "",
    reply_all: bool = False,
    now: datetime | None = None,
    to: Sequence[Participant] | None = None,
) -> EmailMessage:
    """The reply to `original`, from the inbox it reached, threaded by its headers; to
    `to` when given (connectors/email/reply_policy.py decides it), else to its Reply-To
    or sender."""
    ours = normalize_address(original.inbox)
    if to is None:
        to = list(original.reply_to) or ([original.sender] if original.sender else [])
    to = list(to)
    cc: list[Participant] = []
    if reply_all:
        cc = [p for p in (*original.to, *original.cc) if normalize_address(p.address) != ours]
    to_keys = {normalize_address(p.address) for p in to}
    cc = _unique([p for p in cc if normalize_address(p.address) not in to_keys])
    message = _base(Participant(from_name, original.inbox), to, cc, now)
    message["Subject"] = reply_subject(original.subject)
    message["In-Reply-To"] = original.message_id
    message["References"] = " ".join(reply_references(original))
    message.set_content(body)
    return message


def build_new_email(
    *,
    from_address: str,
    to: Iterable[str],
    subject: str,
    body: str,
    cc: Iterable[str] = (),
    from_name: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    """A new message starting its own thread (the send_email tool)."""
    message = _base(
        Participant(from_name, from_address),
        [Participant("", a) for a in to],
        [Participant("", a) for a in cc],
        now,
    )
    message["Subject"] = subject
    message.set_content(body)
    return message


@dataclass(frozen=True)
class Rendered:
    """A built message as a reviewer sees it before approving: the email it will be."""

    message_id: str
    from_: str
    to: list[str]
    cc: list[str]
    subject: str
    body: str


def render(message: EmailMessage) -> Rendered:
    body = message.get_body(preferencelist=("plain",))
    return Rendered(
        message_id=str(message.get("Message-ID", "")),
        from_=str(message.get("From", "")),
        to=[str(a) for a in getattr(message.get("To"), "addresses", ())],
        cc=[str(a) for a in getattr(message.get("Cc"), "addresses", ())],
        subject=str(message.get("Subject", "")),
        body=str(body.get_content()) if isinstance(body, EmailMessage) else "",
    )


def to_storable(message: EmailMessage) -> str:
    """The message as text for a JSON column (an approval's payload): base64 of its bytes."""
    return base64.b64encode(message.as_bytes(policy=policy.SMTP)).decode("ascii")


def from_storable(text: str) -> EmailMessage:
    """The message `to_storable` kept, Message-ID and all, ready to send."""
    message = BytesParser(policy=policy.default).parsebytes(base64.b64decode(text))
    assert isinstance(message, EmailMessage)
    return message


def _base(
    sender: Participant, to: list[Participant], cc: list[Participant], now: datetime | None
) -> EmailMessage:
    if not to:
        raise ValueError("a message needs at least one recipient")
    message = EmailMessage()
    message["From"] = Address(sender.name, addr_spec=sender.address)
    message["To"] = [Address(p.name, addr_spec=p.address) for p in to]
    if cc:
        message["Cc"] = [Address(p.name, addr_spec=p.address) for p in cc]
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = new_message_id(domain_of(sender.address))
    return message


def _participant(value: Any) -> Participant | None:
    if not isinstance(value, Mapping) or not value.get("address"):
        return None
    return Participant(str(value.get("name") or ""), str(value["address"]))


def _participants(values: Any) -> tuple[Participant, ...]:
    found = (_participant(v) for v in values or ())
    return tuple(p for p in found if p is not None)


def _unique(participants: list[Participant]) -> list[Participant]:
    seen: dict[str, Participant] = {}
    for participant in participants:
        seen.setdefault(normalize_address(participant.address), participant)
    return list(seen.values())
