"""Who the agent's reply to an email may go to: checked before a reply is drafted, and
again just before it is sent.

- Never to one of the inboxes this deployment receives mail for (any tenant's, address
  or whole domain): a reply to ourselves starts a loop.
- To the sender, or anyone else who took part in the conversation: yes. That is what a
  reply is, and why replies are not limited by the new-mail allowlist.
- To anyone else (a `Reply-To:` naming an outside address, say): only as new mail
  could go, to a domain in the tenant's allowlist (`tenant_email_allowlist`). Otherwise
  the address is left out and the reply goes to the sender instead.

When the reply goes to anyone but the sender, the approver is told: the action's summary
names both, and a flag on the card says why. The tenant's guardrail e-mail rules
(`/agent policy`) are applied to the result by the agent, as for any e-mail tool call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from connectors.email.compose import OriginalEmail, Participant
from connectors.email.inboxes import domain_of, normalize_address

# Any tenant's inbox: an agent answering another agent loops just as surely.
OUR_INBOX_SQL = """
SELECT 1 FROM tenant_inboxes
 WHERE (kind = 'address' AND address = %(address)s) OR (kind = 'domain' AND address = %(domain)s)
 LIMIT 1
"""
# Everyone who took part in a conversation: who wrote to us in it, and whom we wrote to.
PARTICIPANTS_SQL = """
SELECT DISTINCT lower(address) AS address
  FROM email_messages m,
       unnest(CASE WHEN m.direction = 'inbound' THEN ARRAY[m.from_address]
                   ELSE m.envelope_to END) AS took_part(address)
 WHERE m.tenant_id = %s AND m.conversation_id = %s
"""
ALLOWED_DOMAINS_SQL = "SELECT domain FROM tenant_email_allowlist WHERE tenant_id = %s"

NOT_THE_SENDER = (
    "Reply-To: this reply goes to an address other than the sender's, because the email "
    "asked for it (check the recipients)"
)


@dataclass(frozen=True)
class ReplyAddressing:
    to: tuple[Participant, ...]  # empty: no reply may be proposed (see `refusal`)
    sender: str  # the sender's address, for the summary ("" if the mail named none)
    notes: tuple[str, ...] = ()  # for the approver, as flags on the card
    refusal: str | None = None  # why no reply is proposed, for the request's record

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.to]


def address_reply(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int, original: OriginalEmail
) -> ReplyAddressing:
    """The recipients a reply to `original` may have, and what the approver must know."""
    sender = original.sender
    sender_address = normalize_address(sender.address) if sender is not None else ""
    took_part = participants(conn, tenant_id, conversation_id) | {sender_address} - {""}
    allowed = _allowed_domains(conn, tenant_id)
    kept: list[Participant] = []
    own_inbox = outsider = 0
    for person in original.reply_to or ((sender,) if sender is not None else ()):
        address = normalize_address(person.address)
        if is_our_inbox(conn, address):
            own_inbox += 1
        elif address in took_part or domain_of(address) in allowed:
            kept.append(person)
        else:
            outsider += 1
    fell_back = False
    if not kept and sender is not None and not is_our_inbox(conn, sender_address):
        kept, fell_back = [sender], bool(original.reply_to)
    notes: list[str] = []
    if own_inbox:
        notes.append(f"Reply-To: left out {_count(own_inbox)} of our own inboxes (a mail loop)")
    if outsider:
        notes.append(
            f"Reply-To: left out {_count(outsider)} outside this workspace's allowed domains"
            + ("; the reply goes to the sender instead" if fell_back else "")
        )
    if not kept:
        return ReplyAddressing((), sender_address, tuple(notes), _refusal(own_inbox, outsider))
    if [normalize_address(p.address) for p in kept] != [sender_address]:
        notes.append(NOT_THE_SENDER)
    return ReplyAddressing(tuple(kept), sender_address, tuple(notes))


def refused_recipients(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int, addresses: Iterable[str]
) -> list[str]:
    """Of a built reply's recipients, those it may not go to (empty: send it). For the
    last check before sending: an inbox added, or an allowlist entry removed, since."""
    took_part = participants(conn, tenant_id, conversation_id)
    allowed = _allowed_domains(conn, tenant_id)
    refused = []
    for address in (normalize_address(a) for a in addresses):
        if is_our_inbox(conn, address) or (
            address not in took_part and domain_of(address) not in allowed
        ):
            refused.append(address)
    return refused


def participants(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int
) -> set[str]:
    rows = conn.execute(PARTICIPANTS_SQL, (tenant_id, conversation_id)).fetchall()
    return {normalize_address(r["address"]) for r in rows if r["address"]}


def is_our_inbox(conn: Connection[dict[str, Any]], address: str) -> bool:
    normalized = normalize_address(address)
    found = conn.execute(
        OUR_INBOX_SQL, {"address": normalized, "domain": domain_of(normalized)}
    ).fetchone()
    return found is not None


def _allowed_domains(conn: Connection[dict[str, Any]], tenant_id: int) -> set[str]:
    return {r["domain"] for r in conn.execute(ALLOWED_DOMAINS_SQL, (tenant_id,)).fetchall()}


def _count(n: int) -> str:
    return "one address" if n == 1 else f"{n} addresses"


def _refusal(own_inbox: int, outsider: int) -> str:
    if own_inbox and not outsider:
        return "the email asks for replies to one of our own inboxes (a mail loop)"
    return "nobody this workspace may write to would receive the reply"
