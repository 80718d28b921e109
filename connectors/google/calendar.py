"""The Google Calendar v3 calls the tools make, each a plain function of a GoogleClient.

An invite is created with a client-chosen event id derived from the action's
idempotency key, so a retried insert that Google already kept answers 409 `duplicate`
instead of creating a second event (and sending every attendee a second invitation).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from googleapiclient.discovery import build

from connectors.google.client import GoogleClient, GoogleService
from connectors.rest import ConnectorError, paginate

PAGE_SIZE = 100  # events per events.list page; Google allows 2500, the model needs few


def calendar_service(api_url: str, http: Any) -> GoogleService:
    """The Calendar resource for the process; `http` is only used to build it."""
    resource = build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": api_url},
    )
    return GoogleService("google_calendar", "Google Calendar", resource)


def event_id_for(key: str) -> str:
    """The event id an action with this idempotency key creates: base32hex (Google's
    alphabet for client-chosen ids, lower case), the same on every attempt."""
    digest = hashlib.sha256(f"chatops-invite:{key}".encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


def free_busy(
    api: GoogleClient, emails: list[str], start: datetime, end: datetime
) -> dict[str, Any]:
    found = api.execute(
        api.resource.freebusy().query(
            body={
                "timeMin": start.isoformat(),
                "timeMax": end.isoformat(),
                "items": [{"id": email} for email in emails],
            }
        ),
        not_found="no such calendar",
    )
    calendars: dict[str, Any] = {}
    for email, calendar in (found.get("calendars") or {}).items():
        errors = [e.get("reason") for e in calendar.get("errors") or []]
        if errors:
            # Someone outside the organisation, or a calendar not shared with us.
            calendars[email] = {"error": "calendar not found or not shared"}
        else:
            calendars[email] = {"busy": calendar.get("busy") or []}
    return {
        "time_min": found.get("timeMin"),
        "time_max": found.get("timeMax"),
        "calendars": calendars,
    }


def list_events(
    api: GoogleClient, calendar_id: str, start: datetime, end: datetime, limit: int
) -> list[dict[str, Any]]:
    def page(token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        found = api.execute(
            api.resource.events().list(
                calendarId=calendar_id,
                timeMin=start.isoformat(),
                timeMax=end.isoformat(),
                singleEvents=True,  # recurring events as their occurrences
                orderBy="startTime",
                maxResults=min(limit, PAGE_SIZE),
                pageToken=token,
            ),
            not_found="no such calendar",
        )
        return found.get("items") or [], found.get("nextPageToken")

    return [_event(e) for e in paginate(page, limit=limit)]


def create_invite(
    api: GoogleClient,
    calendar_id: str,
    event: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """Insert the event with attendees invited; an earlier attempt's event if it exists."""
    event_id = event_id_for(key)
    try:
        created = api.execute(
            api.resource.events().insert(
                calendarId=calendar_id,
                body={**event, "id": event_id},
                sendUpdates="all",  # the attendees get Google's invitation email
            ),
            # The same id makes a repeated insert harmless: Google answers 409.
            idempotent=True,
            not_found="no such calendar",
        )
    except ConnectorError as exc:
        if exc.status != 409:
            raise
        existing = find_event(api, calendar_id, event_id)
        if existing is None:
            raise
        return existing
    return _created(created)


def find_event(api: GoogleClient, calendar_id: str, event_id: str) -> dict[str, Any] | None:
    """The event with this id, if an earlier attempt created it."""
    try:
        found = api.execute(
            api.resource.events().get(calendarId=calendar_id, eventId=event_id),
            not_found="no such event",
        )
    except ConnectorError as exc:
        if exc.status == 404:
            return None
        raise
    return _created(found)


def _created(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event.get("id"),
        "link": event.get("htmlLink"),
        "status": event.get("status"),
        "attendees": [a.get("email") for a in event.get("attendees") or []],
    }


def _event(event: dict[str, Any]) -> dict[str, Any]:
    # What the model needs to answer "when am I free / what is on": Google's resource
    # carries etags, reminders and ids of its own that would only cost tokens.
    shown: dict[str, Any] = {
        "id": event.get("id"),
        "summary": event.get("summary", ""),
        "start": _when(event.get("start") or {}),
        "end": _when(event.get("end") or {}),
    }
    if event.get("location"):
        shown["location"] = event["location"]
    if event.get("organizer"):
        shown["organizer"] = (event.get("organizer") or {}).get("email")
    attendees = event.get("attendees") or []
    if attendees:
        shown["attendees"] = [
            {"email": a.get("email"), "response": a.get("responseStatus")} for a in attendees
        ]
    return shown


def _when(moment: dict[str, Any]) -> str | None:
    value = moment.get("dateTime") or moment.get("date")
    return str(value) if value is not None else None
