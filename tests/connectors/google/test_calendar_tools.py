"""Google Calendar tools through google-api-python-client against the Calendar emulator:
reads run at once and explain their failures; an invite waits for approval and, once
approved, is created (and its attendees invited) exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httplib2
import pytest
from structlog.testing import capture_logs

from connectors.credentials import CredentialStore, cipher_from_settings
from connectors.google import calendar as calendar_api
from connectors.google.calendar import calendar_service
from connectors.google.client import GoogleClient, google_session
from connectors.rest import ConnectorError, RetryPolicy
from core.schemas import ToolCall
from core.tools import ToolArgumentsError
from sandbox.google_calendar_api import CalendarEmulator
from sandbox.google_oauth import GoogleOAuthEmulator, Grant
from tests.connectors.google.conftest import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    OWNER,
    SECRETS,
    connect_google,
    new_address,
)
from tests.connectors.workspace import Workspace

MONDAY = datetime(2030, 3, 4, tzinfo=UTC)


def _at(hour: int, minute: int = 0, day: datetime = MONDAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


def _window(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}


def _invite(attendee: str, summary: str = "Renewal call") -> dict[str, object]:
    return {"summary": summary, "attendees": [attendee], **_window(_at(15), _at(15, 30))}


def test_free_busy_merges_each_attendees_busy_times(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """Free/busy gives each person's busy intervals in the window, overlaps merged, and
    says which calendars it could not see."""
    dana, lee, outsider = new_address("dana"), new_address("lee"), new_address("out")
    for person in (dana, lee):
        calendar.calendars.add_calendar(person)
    calendar.calendars.add_event(dana, "Standup", _at(9), _at(9, 30))
    calendar.calendars.add_event(dana, "1:1", _at(9, 15), _at(10))
    calendar.calendars.add_event(
        dana,
        "Yesterday",
        _at(9, day=MONDAY - timedelta(days=1)),
        _at(10, day=MONDAY - timedelta(days=1)),
    )
    calendar.calendars.add_event(lee, "Lunch", _at(12), _at(13))

    result = workspace.call(
        "calendar_free_busy", {"attendees": [dana, lee, outsider], **_window(_at(8), _at(18))}
    )

    assert result["calendars"] == {
        dana: {"busy": [{"start": "2030-03-04T09:00:00Z", "end": "2030-03-04T10:00:00Z"}]},
        lee: {"busy": [{"start": "2030-03-04T12:00:00Z", "end": "2030-03-04T13:00:00Z"}]},
        outsider: {"error": "calendar not found or not shared"},
    }
    assert [r.path for r in calendar.requests] == ["/calendar/v3/freeBusy"]


def test_what_a_free_busy_read_shows_stops_an_invite_into_busy_time(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """The Act step hands the model a free/busy result as JSON (not a Python repr), and
    from it the invite tool says who is busy during the meeting; a meeting that ends as
    the invite starts is no clash."""
    dana, lee = new_address("dana"), new_address("lee")
    for person in (dana, lee):
        calendar.calendars.add_calendar(person)
    calendar.calendars.add_event(dana, "Customer visit", _at(14, 30), _at(16))
    calendar.calendars.add_event(lee, "Standup", _at(14), _at(15))
    toolbox = workspace.toolbox()
    read = toolbox.run(
        ToolCall(
            name="calendar_free_busy",
            arguments={"attendees": [dana, lee], **_window(_at(14), _at(16))},
            reason="check first",
        ),
        0,
    )
    invite_tool = workspace.registry.get("calendar_create_invite")
    assert invite_tool is not None and invite_tool.conflicts is not None

    def against(*attendees: str) -> str | None:
        invite = invite_tool.parse(
            {"summary": "Call", "attendees": list(attendees), **_window(_at(15), _at(15, 30))}
        )
        return invite_tool.conflicts(invite, [read.output])  # type: ignore[misc]

    assert json.loads(read.output)["calendars"][lee] == {
        "busy": [{"start": "2030-03-04T14:00:00Z", "end": "2030-03-04T15:00:00Z"}]
    }
    assert against(lee) is None
    assert against(lee, dana.upper()) == (
        f"Not proposed: {dana} is busy Mon 4 Mar 2030, 14:30 to 16:00 (UTC), which overlaps "
        "the meeting. Tell the requester who is busy and when, and offer to find another time."
    )


def test_listing_events_follows_page_tokens(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """A listing larger than one page follows nextPageToken until it has enough."""
    room = new_address("room")
    calendar.calendars.add_calendar(room)
    for n in range(130):
        calendar.calendars.add_event(room, f"Slot {n}", _at(8, n), _at(8, n + 1))

    found = calendar_api.list_events(_client(workspace), room, _at(0), _at(23), limit=120)

    assert [e["summary"] for e in found] == [f"Slot {n}" for n in range(120)]
    listed = [r.query for r in calendar.requests if r.path.endswith("/events")]
    assert [q.get("pageToken") is not None for q in listed] == [False, True]
    assert listed[0]["maxResults"] == "100"


def test_the_list_tool_shows_events_in_the_window(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """The list tool returns the primary calendar's events in the window, earliest first."""
    day = MONDAY + timedelta(days=7 * 20)  # a week no other test uses
    calendar.calendars.add_event(
        OWNER, "Demo", _at(14, day=day), _at(15, day=day), attendees=["x@acme.example"]
    )
    calendar.calendars.add_event(OWNER, "Kickoff", _at(10, day=day), _at(11, day=day))

    result = workspace.call("calendar_list_events", _window(_at(0, day=day), _at(23, day=day)))

    assert [(e["summary"], e["start"]) for e in result["events"]] == [
        ("Kickoff", "2030-07-22T10:00:00Z"),
        ("Demo", "2030-07-22T14:00:00Z"),
    ]
    assert result["events"][1]["attendees"] == [
        {"email": "x@acme.example", "response": "needsAction"}
    ]


def test_a_rate_limited_read_waits_for_retry_after(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """A 429 is waited out for as long as its Retry-After says, then the read succeeds."""
    calendar.fail_next(429, retry_after=1)

    started = time.monotonic()
    result = workspace.call("calendar_list_events", _window(_at(0), _at(1)))

    assert time.monotonic() - started >= 1.0
    assert result == {"events": []}
    assert [r.path for r in calendar.requests] == ["/calendar/v3/calendars/primary/events"] * 2


def test_a_read_is_retried_after_a_server_error(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """A 503 on a read is retried with backoff and the read succeeds."""
    calendar.fail_next(503)

    result = workspace.call("calendar_list_events", _window(_at(0), _at(1)))

    assert result == {"events": []}
    assert len(calendar.requests) == 2


def test_a_missing_calendar_is_named(workspace: Workspace) -> None:
    """Listing a calendar that does not exist says so, in words."""
    result = workspace.call(
        "calendar_list_events", {"calendar_id": "nobody@acme.example", **_window(_at(0), _at(1))}
    )

    assert result == {"error": "Google Calendar: no such calendar"}


def test_a_revoked_grant_asks_an_admin_to_reconnect(
    new_workspace: Callable[[], Workspace],
    oauth: GoogleOAuthEmulator,
    calendar: CalendarEmulator,
) -> None:
    """When Google refuses the refresh token, the agent is told to have an admin reconnect,
    and the Calendar API is never called with it."""
    calendar.reset()
    space = new_workspace()
    refresh_token = f"1//0gRevoked-{space.tenant_id}"
    oauth.add(Grant(CLIENT_ID, CLIENT_SECRET, refresh_token, ACCESS_TOKEN))
    connect_google(space, "google_calendar", refresh_token)
    assert "events" in space.call("calendar_list_events", _window(_at(0), _at(1)))
    oauth.revoke(refresh_token)
    calendar.reset()

    result = space.call("calendar_free_busy", {"attendees": [OWNER], **_window(_at(0), _at(1))})

    assert "ask an admin to reconnect Google Calendar" in result["error"]
    assert "`/agent connect google_calendar`" in result["error"]
    assert calendar.requests == []


def test_an_access_token_google_rejects_asks_to_reconnect(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """A 401 from the Calendar API itself (after google-auth's one refresh) reads the same."""
    calendar.fail_next(401)
    calendar.fail_next(401)

    result = workspace.call("calendar_list_events", _window(_at(0), _at(1)))

    assert "ask an admin to reconnect Google Calendar" in result["error"]
    assert len(calendar.requests) == 2


def test_a_tenant_without_google_calendar_is_told_how_to_connect(
    new_workspace: Callable[[], Workspace], calendar: CalendarEmulator
) -> None:
    """Before an admin connects Google Calendar, its tools say so and call nothing."""
    calendar.reset()

    result = new_workspace().call("calendar_list_events", _window(_at(0), _at(1)))

    assert "`/agent connect google_calendar`" in result["error"]
    assert calendar.requests == []


def test_a_window_that_ends_before_it_starts_is_refused(workspace: Workspace) -> None:
    """Arguments are validated before any call: the model hears what was wrong."""
    tool = workspace.registry.get("calendar_free_busy")
    assert tool is not None

    with pytest.raises(ToolArgumentsError, match="end must be after start"):
        tool.parse({"attendees": [OWNER], **_window(_at(10), _at(9))})


def test_an_invite_becomes_a_pending_action(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """An invite creates nothing from the Act step: it waits for approval, and its card
    shows each attendee's free/busy for the slot (read from Google just before)."""
    kim, lee = new_address("kim"), new_address("lee")
    for person in (kim, lee):
        calendar.calendars.add_calendar(person)
    calendar.calendars.add_event(kim, "Dentist", _at(15, 15), _at(16))
    invite = {**_invite(kim), "attendees": [kim, lee, new_address("outsider")]}

    told, action = workspace.propose("calendar_create_invite", invite)

    assert told.startswith("Waiting for approval, not done yet: action ")
    assert action is not None and action["status"] == "pending"
    assert action["tool"] == "calendar_create_invite"
    assert [r.method for r in calendar.requests] == ["POST"]  # the free/busy query
    assert not [i for i in calendar.calendars.invitations if i.attendee in (kim, lee)]
    preview = action["preview"]
    assert preview["subject"].startswith("Meeting: Renewal call, ")
    assert "15:00 to 15:30" in preview["subject"]
    states = [change.rsplit(": ", 1)[1] for change in preview["changes"]]
    assert states == ["busy", "free", "calendar not shared"]
    # Addresses as approvers may see them (partly, by default).
    assert kim not in json.dumps(preview)


def test_an_approved_invite_is_created_once_even_when_retried(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """An insert Google kept but answered 503 to, with every retry failing too, is found by
    its id on the job's retry: one event, one invitation."""
    kim = new_address("kim")
    _, action = workspace.propose("calendar_create_invite", _invite(kim))
    assert action is not None
    workspace.approve(action)
    calendar.fail_next(503, after_commit=True)
    for _ in range(3):  # the client's retries of the insert
        calendar.fail_next(503)

    with pytest.raises(ConnectorError):
        workspace.execute(action["id"])  # the job fails; Dramatiq would retry it
    executed = workspace.execute(action["id"])

    event_id = calendar_api.event_id_for(action["idempotency_key"])
    assert executed["status"] == "executed"
    assert executed["result"]["event_id"] == event_id
    event = calendar.calendars.get(OWNER, event_id)
    assert event.summary == "Renewal call" and event.attendees == [kim]
    assert [i.attendee for i in calendar.calendars.invitations if i.event_id == event_id] == [kim]


def test_running_an_invite_twice_with_one_key_creates_one_event(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """A re-run with the same idempotency key gets Google's 409 and returns the first event."""
    tool = workspace.registry.get("calendar_create_invite")
    assert tool is not None
    ada = new_address("ada")
    arguments = tool.parse(_invite(ada, "Pricing review"))

    first = tool.run(workspace.context, arguments, "action-key-twice")
    second = tool.run(workspace.context, arguments, "action-key-twice")

    assert first == second and first["attendees"] == [ada]
    inserts = [r for r in calendar.requests if r.method == "POST"]
    assert len(inserts) == 2 and inserts[0].query["sendUpdates"] == "all"
    assert [
        i.attendee for i in calendar.calendars.invitations if i.event_id == first["event_id"]
    ] == [ada]


def test_credentials_never_reach_logs_or_the_audit_log(
    workspace: Workspace, calendar: CalendarEmulator
) -> None:
    """Connecting, using and failing with a Google credential logs and audits no secret."""
    with capture_logs() as entries:
        connect_google(workspace, "google_calendar")
        workspace.call("calendar_list_events", _window(_at(0), _at(1)))
        calendar.fail_next(401)
        calendar.fail_next(401)
        refused = workspace.call("calendar_list_events", _window(_at(0), _at(1)))

    assert "error" in refused
    logged = repr(entries)
    audit = repr(
        workspace.db.execute(
            "SELECT actor, action, subject, details::text FROM audit_log WHERE tenant_id = %s",
            (workspace.tenant_id,),
        ).fetchall()
    )
    assert "connector.connected" in logged and "connector.connected" in audit
    for secret in SECRETS:
        assert secret not in logged and secret not in audit


def _client(space: Workspace) -> GoogleClient:
    """The session the tools use, for calling the API functions directly."""
    session = google_session(
        calendar_service(space.settings.google_calendar_api_url, httplib2.Http()),
        CredentialStore(space.pool, cipher_from_settings(space.settings)),
        token_url=space.settings.google_oauth_token_url,
        timeout=10,
        retry=RetryPolicy(),
    )
    return session(space.tenant_id)
