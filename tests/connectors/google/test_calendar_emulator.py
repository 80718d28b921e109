"""The Calendar emulator answers the real google-api-python-client with Google's shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httplib2
import pytest
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp  # type: ignore[import-untyped]  # no stubs shipped
from googleapiclient.errors import HttpError

from connectors.google.calendar import calendar_service
from sandbox.google_calendar_api import CalendarEmulator

TOKEN = "ya29.emulator-test"  # a local fake
EVENT = {
    "summary": "Sync",
    "start": {"dateTime": "2030-01-07T10:00:00Z"},
    "end": {"dateTime": "2030-01-07T10:30:00Z"},
    "attendees": [{"email": "kim@acme.example"}],
}


@pytest.fixture
def emulator() -> Iterator[CalendarEmulator]:
    with CalendarEmulator(owner="owner@acme.example", access_token=TOKEN) as served:
        yield served


def _resource(emulator: CalendarEmulator, token: str = TOKEN) -> Any:
    # A fixed access token: google-auth adds it to every request and never refreshes it.
    http = AuthorizedHttp(
        Credentials(token=token),  # type: ignore[no-untyped-call]  # google-auth is untyped here
        http=httplib2.Http(timeout=10),
        refresh_status_codes=(),
    )
    return calendar_service(emulator.api_url, http).resource


def _error(exc: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.content)["error"]
    return body


def test_an_inserted_event_is_listed_and_a_second_insert_of_its_id_is_a_duplicate(
    emulator: CalendarEmulator,
) -> None:
    """Insert with a client id, list it back, and get 409 `duplicate` for the same id."""
    events = _resource(emulator).events()

    created = events.insert(
        calendarId="primary", body={**EVENT, "id": "abc123def"}, sendUpdates="all"
    ).execute()
    listed = events.list(
        calendarId="primary",
        timeMin="2030-01-07T00:00:00Z",
        timeMax="2030-01-08T00:00:00Z",
        singleEvents=True,
        orderBy="startTime",
    ).execute()
    with pytest.raises(HttpError) as duplicate:
        events.insert(calendarId="primary", body={**EVENT, "id": "abc123def"}).execute()

    assert created["id"] == "abc123def" and created["kind"] == "calendar#event"
    assert created["attendees"] == [{"email": "kim@acme.example", "responseStatus": "needsAction"}]
    assert [e["id"] for e in listed["items"]] == ["abc123def"] and "nextPageToken" not in listed
    assert duplicate.value.resp.status == 409
    assert _error(duplicate)["errors"][0]["reason"] == "duplicate"
    assert [i.attendee for i in emulator.calendars.invitations] == ["kim@acme.example"]


def test_errors_have_googles_shape(emulator: CalendarEmulator) -> None:
    """401, 404 and 400 bodies are {"error": {code, message, errors[], status}}."""
    with pytest.raises(HttpError) as unauthenticated:
        _resource(emulator, "ya29.wrong").events().list(calendarId="primary").execute()
    with pytest.raises(HttpError) as missing:
        _resource(emulator).events().get(calendarId="primary", eventId="nothere1").execute()
    with pytest.raises(HttpError) as bad_id:
        _resource(emulator).events().insert(
            calendarId="primary", body={**EVENT, "id": "UPPER-case"}
        ).execute()

    assert _error(unauthenticated)["status"] == "UNAUTHENTICATED"
    assert _error(missing)["errors"] == [
        {"domain": "global", "reason": "notFound", "message": "Not Found"}
    ]
    assert (
        _error(bad_id)["code"] == 400 and _error(bad_id)["message"] == "Invalid resource id value."
    )


def test_a_rate_limit_carries_retry_after(emulator: CalendarEmulator) -> None:
    """An injected 429 answers with Retry-After and Google's rateLimitExceeded reason."""
    emulator.fail_next(429, retry_after=7)

    with pytest.raises(HttpError) as limited:
        _resource(emulator).freebusy().query(
            body={"timeMin": "2030-01-07T00:00:00Z", "timeMax": "2030-01-08T00:00:00Z", "items": []}
        ).execute()

    assert limited.value.resp.status == 429 and limited.value.resp["retry-after"] == "7"
    assert _error(limited)["errors"][0]["reason"] == "rateLimitExceeded"
