"""Google Calendar tools: free/busy and events (read-only); an invite to a meeting
(external: it emails every attendee, so it waits for a person's approval)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from connectors.google import calendar
from connectors.google.client import GoogleSession
from connectors.tool_errors import read_result, write_result
from core.tools import ActionContext, Preview, Tool, external_tool, read_only_tool

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CALENDAR_ID = r"^(primary|[^@\s]+@[^@\s]+)$"
MAX_WINDOW = timedelta(days=62)  # of a free/busy or events query
MAX_ATTENDEES = 20

# A time with its offset, kept as RFC 3339 text when the arguments are stored (a pending
# action's arguments are JSON) and read back as a datetime.
Moment = Annotated[AwareDatetime, PlainSerializer(datetime.isoformat, return_type=str)]


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Moment = Field(description="Start, RFC 3339 with offset: 2025-03-04T09:00:00Z")
    end: Moment = Field(description="End, RFC 3339 with offset, after start")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError(f"the window may span at most {MAX_WINDOW.days} days")
        return self


class FreeBusy(_Window):
    attendees: list[str] = Field(
        min_length=1,
        max_length=MAX_ATTENDEES,
        description="Email addresses whose calendars to check",
    )

    @model_validator(mode="after")
    def _emails(self) -> Self:
        _require_emails(self.attendees)
        return self


class ListEvents(_Window):
    calendar_id: str = Field(
        default="primary",
        pattern=CALENDAR_ID,
        description="`primary` (the connected account's calendar) or a calendar's email",
    )
    limit: int = Field(default=25, ge=1, le=100, description="At most this many events")


class CreateInvite(_Window):
    summary: str = Field(min_length=1, max_length=200, description="The meeting's title")
    attendees: list[str] = Field(
        min_length=1, max_length=MAX_ATTENDEES, description="Email addresses to invite"
    )
    description: str | None = Field(default=None, max_length=5000)
    location: str | None = Field(default=None, max_length=300)
    calendar_id: str = Field(default="primary", pattern=CALENDAR_ID)

    @model_validator(mode="after")
    def _emails(self) -> Self:
        _require_emails(self.attendees)
        return self

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "summary": self.summary,
            "start": {"dateTime": self.start.isoformat()},
            "end": {"dateTime": self.end.isoformat()},
            "attendees": [{"email": email} for email in self.attendees],
        }
        if self.description:
            event["description"] = self.description
        if self.location:
            event["location"] = self.location
        return event


def _require_emails(addresses: list[str]) -> None:
    bad = [a for a in addresses if not EMAIL.match(a)]
    if bad:
        raise ValueError(f"not email addresses: {', '.join(bad)}")


def calendar_tools(session: GoogleSession) -> list[Tool]:
    return [_free_busy(session), _list_events(session), _create_invite(session)]


def _free_busy(session: GoogleSession) -> Tool:
    return read_only_tool(
        "calendar_free_busy",
        (
            "When people are busy between two times, from their Google calendars (free "
            "is every gap between the busy intervals)."
        ),
        FreeBusy,
        lambda context, a: calendar.free_busy(
            session(context.tenant_id), a.attendees, a.start, a.end
        ),
        lambda a: f"Check when {', '.join(a.attendees)} are busy",
        failures=read_result,
    )


def _list_events(session: GoogleSession) -> Tool:
    return read_only_tool(
        "calendar_list_events",
        "The events on a Google calendar between two times, earliest first.",
        ListEvents,
        lambda context, a: {
            "events": calendar.list_events(
                session(context.tenant_id), a.calendar_id, a.start, a.end, a.limit
            )
        },
        lambda a: f"List the events on Google calendar {a.calendar_id}",
        failures=read_result,
    )


def _create_invite(session: GoogleSession) -> Tool:
    def preview(context: ActionContext, arguments: CreateInvite) -> Preview:
        # Each attendee's free/busy for the slot, for the approver to judge. Not checked
        # again at execution: an attendee busy by then can still decline or move it.
        found = calendar.free_busy(
            session(context.tenant_id), arguments.attendees, arguments.start, arguments.end
        )
        calendars = found.get("calendars") or {}
        states = {email: _availability(calendars.get(email)) for email in arguments.attendees}
        return Preview(
            subject=f"Meeting: {arguments.summary}, {slot(arguments.start, arguments.end)}",
            changes=tuple(f"{email}: {state}" for email, state in states.items()),
            covers=("summary", "start", "end", "attendees", "calendar_id"),
        )

    return external_tool(
        "calendar_create_invite",
        (
            "Create a Google Calendar event and email an invitation to every attendee. "
            "Needs a person's approval before it happens."
        ),
        CreateInvite,
        lambda context, a, key: calendar.create_invite(
            session(context.tenant_id), a.calendar_id, a.event(), key
        ),
        lambda context, a, key: calendar.find_event(
            session(context.tenant_id), a.calendar_id, calendar.event_id_for(key)
        ),
        lambda a: f"Invite {', '.join(a.attendees)} to “{a.summary}”, {slot(a.start, a.end)}",
        preview=("the attendees' calendars", preview),
        conflicts=busy_attendees,
        failures=write_result,
    )


def busy_attendees(invite: CreateInvite, outputs: list[str]) -> str | None:
    """Who a free/busy result read earlier in the run shows busy during the invite's
    slot, in people's words; None when nobody is. A 1.5B model checked Priya's calendar,
    read that she was busy, and proposed the invite anyway."""
    invited = {address.lower() for address in invite.attendees}
    clashes: dict[str, tuple[datetime, datetime]] = {}
    for output in outputs:
        for email, start, end in _busy_intervals(output):
            if email in invited and start < invite.end and invite.start < end:
                clashes.setdefault(email, (start, end))
    if not clashes:
        return None
    who = "; ".join(
        f"{email} is busy {slot(start, end)}" for email, (start, end) in clashes.items()
    )
    return (
        f"Not proposed: {who}, which overlaps the meeting. Tell the requester who is busy "
        "and when, and offer to find another time."
    )


def _busy_intervals(output: str) -> list[tuple[str, datetime, datetime]]:
    """The (email, start, end) busy intervals in a free/busy result's JSON; none for
    any other output."""
    try:
        found = json.loads(output)
    except ValueError:
        return []
    calendars = found.get("calendars") if isinstance(found, dict) else None
    if not isinstance(calendars, dict):
        return []
    intervals = []
    for email, state in calendars.items():
        busy = state.get("busy") if isinstance(state, dict) else None
        for interval in busy if isinstance(busy, list) else []:
            try:
                start = datetime.fromisoformat(interval["start"])
                end = datetime.fromisoformat(interval["end"])
            except (TypeError, KeyError, ValueError):
                continue
            if start.tzinfo is not None and end.tzinfo is not None:
                intervals.append((str(email).lower(), start, end))
    return intervals


def _availability(calendar_state: dict[str, Any] | None) -> str:
    if not calendar_state or "error" in calendar_state:
        return "calendar not shared"
    return "busy" if calendar_state.get("busy") else "free"


def slot(start: datetime, end: datetime) -> str:
    """A meeting's time as people read it: Tue 4 Mar 2025, 09:00 to 09:30 (UTC+01:00)."""
    day = f"{start:%a} {start.day} {start:%b %Y}, {start:%H:%M}"
    offset = start.strftime("%z")
    zone = f"UTC{offset[:3]}:{offset[3:]}" if offset not in ("", "+0000") else "UTC"
    until = (
        f"{end:%H:%M}"
        if end.date() == start.date()
        else f"{end:%a} {end.day} {end:%b}, {end:%H:%M}"
    )
    return f"{day} to {until} ({zone})"
