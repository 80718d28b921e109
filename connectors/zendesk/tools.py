"""Zendesk tools: search tickets and read one with its comments (read-only); comment on a
ticket and change its status (external: they wait for a person's approval)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.sessions import Session
from connectors.tool_errors import read_result, write_result
from connectors.zendesk import api
from core.tools import (
    ActionContext,
    Preview,
    Tool,
    Watched,
    external_tool,
    read_only_tool,
)

COMMENTS_READ = 50  # comments shown with a ticket, oldest first
Status = Literal["open", "pending", "hold", "solved"]  # "closed" is Zendesk's, not ours to set


class SearchTickets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=300,
        description="Zendesk search words and filters, e.g. 'refund status:open'",
    )
    limit: int = Field(default=10, ge=1, le=50, description="At most this many tickets")


class ReadTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: int = Field(ge=1, description="The Zendesk ticket number")


class AddTicketComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: int = Field(ge=1, description="The Zendesk ticket number")
    body: str = Field(min_length=1, max_length=10_000, description="The comment, in plain text")
    public: bool = Field(
        default=False,
        description="True: the requester sees it (and is emailed); false: an internal note",
    )


class SetTicketStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: int = Field(ge=1, description="The Zendesk ticket number")
    status: Status


def zendesk_tools(session: Session) -> list[Tool]:
    return [
        _search_tickets(session),
        _read_ticket(session),
        _add_comment(session),
        _set_status(session),
    ]


def _search_tickets(session: Session) -> Tool:
    return read_only_tool(
        "zendesk_search_tickets",
        "Find Zendesk tickets with Zendesk's search syntax; returns their numbers.",
        SearchTickets,
        lambda context, a: {
            "tickets": api.search_tickets(session(context.tenant_id), a.query, a.limit)
        },
        lambda a: f"Search Zendesk tickets for {a.query!r}",
        failures=read_result,
    )


def _read_ticket(session: Session) -> Tool:
    return read_only_tool(
        "zendesk_read_ticket",
        "Read one Zendesk ticket: subject, status, requester and its comments.",
        ReadTicket,
        lambda context, a: api.read_ticket(session(context.tenant_id), a.ticket_id, COMMENTS_READ),
        lambda a: f"Read Zendesk ticket #{a.ticket_id}",
        failures=read_result,
    )


def _add_comment(session: Session) -> Tool:
    def summary(arguments: AddTicketComment) -> str:
        kind = "a public reply" if arguments.public else "an internal note"
        return f"Add {kind} to Zendesk ticket #{arguments.ticket_id}"

    return external_tool(
        "zendesk_add_comment",
        (
            "Reply to the customer on a Zendesk ticket (a public comment they are "
            "emailed), or add an internal note. Use it to tell a customer anything. Needs "
            "a person's approval before it happens."
        ),
        AddTicketComment,
        lambda context, a, key: api.add_comment(
            session(context.tenant_id), a.ticket_id, a.body, a.public, key
        ),
        # Zendesk comments carry no metadata of ours: an identical comment already on the
        # ticket is taken as the earlier attempt's (the agent never repeats one verbatim).
        lambda context, a, key: api.find_comment(session(context.tenant_id), a.ticket_id, a.body),
        summary,
        failures=write_result,
    )


def _set_status(session: Session) -> Tool:
    def find(context: ActionContext, arguments: SetTicketStatus, key: str) -> dict[str, Any] | None:
        # A status is a value, not an event: if the ticket already has it, it is done.
        status = api.ticket_status(session(context.tenant_id), arguments.ticket_id)
        if status != arguments.status:
            return None
        return {"ticket_id": arguments.ticket_id, "status": status}

    def preview(context: ActionContext, arguments: SetTicketStatus) -> Preview:
        ticket = api.ticket_summary(session(context.tenant_id), arguments.ticket_id)
        subject = str(ticket.get("subject") or "(no subject)")
        status = ticket.get("status")
        before = str(status) if status else "no status"
        return Preview(
            subject=f"Ticket #{arguments.ticket_id}: {subject}",
            changes=(f"Status: {before} → {arguments.status}",),
            watched=(Watched("the ticket's status", status, before),),
            covers=("ticket_id", "status"),
        )

    return external_tool(
        "zendesk_set_status",
        (
            "Change a Zendesk ticket's status (open, pending, hold, solved). Needs a "
            "person's approval before it happens."
        ),
        SetTicketStatus,
        lambda context, a, key: api.set_status(
            session(context.tenant_id), a.ticket_id, a.status, key
        ),
        find,
        lambda a: f"Set Zendesk ticket #{a.ticket_id} to {a.status}",
        preview=("the ticket's current status", preview),
        failures=write_result,
    )
