"""A local emulator of the Google Calendar API v3 endpoints the Calendar connector calls.

Serves, with Google's wire shapes, so google-api-python-client can be pointed at it
(client_options={"api_endpoint": emulator.api_url}):

- freebusy.query (POST /calendar/v3/freeBusy): `calendars{id: {busy: [{start, end}]}}`,
  and `errors: [{domain, reason: notFound}]` for a calendar it does not know;
- events.list (GET .../calendars/{calendarId}/events): `timeMin`/`timeMax` overlap,
  `singleEvents`, `orderBy=startTime`, pages cut by `maxResults` and `nextPageToken`;
- events.insert (POST .../calendars/{calendarId}/events): a client-chosen `id`
  (base32hex, 5-1024 characters) answers 409 `duplicate` when it exists, as Google does;
  `sendUpdates` decides whether attendees are sent an invitation (see `invitations`);
- events.get (GET .../calendars/{calendarId}/events/{eventId}).

`primary` is the calendar of the account the access token belongs to. Errors have
Google's `{"error": {"code", "message", "errors": [...], "status"}}` form. Faults can be
injected: `fail_next(status, retry_after=..., after_commit=...)` (a 401, a 429 with
Retry-After, a 5xx), optionally after doing the write. Every request is logged (method,
path, query and body; never headers) for tests to assert on.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from sandbox.background import ApiEmulator, Fault

PREFIX = "/calendar/v3"
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")  # Google's rule for client-chosen ids
LIST_DEFAULT_PAGE, LIST_MAX_PAGE = 250, 2500
FREEBUSY_MAX_CALENDARS = 50


class CalendarApiError(Exception):
    def __init__(
        self,
        code: int,
        status: str,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.status, self.reason, self.message = code, status, reason, message
        self.domain, self.retry_after = domain, retry_after

    def response(self) -> web.Response:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None
        error = {"domain": self.domain, "reason": self.reason, "message": self.message}
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [error],
                "status": self.status,
            }
        }
        return web.json_response(body, status=self.code, headers=headers)


def _not_found() -> CalendarApiError:
    return CalendarApiError(404, "NOT_FOUND", "notFound", "Not Found")


def _bad_request(reason: str, message: str) -> CalendarApiError:
    return CalendarApiError(400, "INVALID_ARGUMENT", reason, message)


@dataclass
class Event:
    id: str
    calendar_id: str
    summary: str
    start: dict[str, str]  # {"dateTime", "timeZone"} or {"date"}, as the client sent it
    end: dict[str, str]
    attendees: list[str] = field(default_factory=list)
    description: str | None = None
    location: str | None = None
    status: str = "confirmed"
    created: str = field(default_factory=lambda: _rfc3339(datetime.now(UTC)))

    @property
    def starts(self) -> datetime:
        return _moment(self.start)

    @property
    def ends(self) -> datetime:
        return _moment(self.end)

    def resource(self) -> dict[str, Any]:
        link = base64.urlsafe_b64encode(f"{self.id} {self.calendar_id}".encode()).decode()
        etag = int(hashlib.sha256(f"{self.id}{self.created}".encode()).hexdigest()[:15], 16)
        resource: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": f'"{etag}"',
            "id": self.id,
            "status": self.status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={link.rstrip('=')}",
            "created": self.created,
            "updated": self.created,
            "summary": self.summary,
            "creator": {"email": self.calendar_id, "self": True},
            "organizer": {"email": self.calendar_id, "self": True},
            "start": dict(self.start),
            "end": dict(self.end),
            "iCalUID": f"{self.id}@google.com",
            "sequence": 0,
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        if self.description:
            resource["description"] = self.description
        if self.location:
            resource["location"] = self.location
        if self.attendees:
            resource["attendees"] = [
                {"email": email, "responseStatus": "needsAction"} for email in self.attendees
            ]
        return resource


@dataclass(frozen=True)
class Invitation:
    """An invitation email Google would have sent an attendee."""

    event_id: str
    attendee: str


class Calendars:
    """Every calendar's events; every method is safe to call from any thread."""

    def __init__(self, *calendar_ids: str) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, dict[str, Event]] = {cid: {} for cid in calendar_ids}
        self.invitations: list[Invitation] = []

    def add_calendar(self, calendar_id: str) -> None:
        with self._lock:
            self._events.setdefault(calendar_id, {})

    def known(self, calendar_id: str) -> bool:
        with self._lock:
            return calendar_id in self._events

    def add_event(
        self,
        calendar_id: str,
        summary: str,
        start: datetime,
        end: datetime,
        *,
        attendees: list[str] | None = None,
        event_id: str | None = None,
    ) -> Event:
        """An event already on the calendar (what a test or the sandbox starts with)."""
        event = Event(
            id=event_id or hashlib.sha1(f"{calendar_id}{summary}{start}".encode()).hexdigest(),  # noqa: S324  # an id, not security
            calendar_id=calendar_id,
            summary=summary,
            start={"dateTime": _rfc3339(start), "timeZone": "UTC"},
            end={"dateTime": _rfc3339(end), "timeZone": "UTC"},
            attendees=list(attendees or []),
        )
        return self.insert(event, send_updates="none")

    def insert(self, event: Event, *, send_updates: str) -> Event:
        with self._lock:
            events = self._events.get(event.calendar_id)
            if events is None:
                raise _not_found()
            if event.id in events:
                raise CalendarApiError(
                    409,
                    "ALREADY_EXISTS",
                    "duplicate",
                    "The requested identifier already exists.",
                )
            events[event.id] = event
            if send_updates in ("all", "externalOnly"):
                self.invitations.extend(Invitation(event.id, a) for a in event.attendees)
            return event

    def get(self, calendar_id: str, event_id: str) -> Event:
        with self._lock:
            found = self._events.get(calendar_id, {}).get(event_id)
        if found is None:
            raise _not_found()
        return found

    def events(self, calendar_id: str) -> list[Event]:
        with self._lock:
            events = self._events.get(calendar_id)
            if events is None:
                raise _not_found()
            return sorted(events.values(), key=lambda e: (e.starts, e.id))

    def busy(self, calendar_id: str, start: datetime, end: datetime) -> list[dict[str, str]]:
        """Merged busy intervals within [start, end), clipped to it, as freebusy gives them."""
        spans = sorted(
            (max(e.starts, start), min(e.ends, end))
            for e in self.events(calendar_id)
            if e.status != "cancelled" and e.starts < end and e.ends > start
        )
        merged: list[list[datetime]] = []
        for begin, finish in spans:
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], finish)
            else:
                merged.append([begin, finish])
        return [{"start": _rfc3339(b), "end": _rfc3339(f)} for b, f in merged]


class CalendarEmulator(ApiEmulator):
    """The Calendar API for one account on 127.0.0.1, served from a background thread."""

    def __init__(self, owner: str = "agent@sandbox.example", access_token: str = "ya29.sandbox"):  # noqa: S107  # a local fake
        self.owner = owner
        self.access_token = access_token
        self.calendars = Calendars(owner)
        super().__init__(self._app())

    @property
    def api_url(self) -> str:
        """The `api_endpoint` for googleapiclient's client_options (with the service path)."""
        return f"{self._server.url}{PREFIX}/"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(f"{PREFIX}/freeBusy", self._free_busy)
        app.router.add_get(f"{PREFIX}/calendars/{{calendarId}}/events", self._list)
        app.router.add_post(f"{PREFIX}/calendars/{{calendarId}}/events", self._insert)
        app.router.add_get(f"{PREFIX}/calendars/{{calendarId}}/events/{{eventId}}", self._get)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self._record(request)
        try:
            if request.headers.get("Authorization") != f"Bearer {self.access_token}":
                raise CalendarApiError(
                    401,
                    "UNAUTHENTICATED",
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                )
            return await self._answer_or_fault(request, handler, _fault_error)
        except CalendarApiError as exc:
            return exc.response()

    def _calendar(self, request: web.Request) -> str:
        calendar_id = request.match_info["calendarId"]
        return self.owner if calendar_id == "primary" else calendar_id

    async def _free_busy(self, request: web.Request) -> web.Response:
        body = await _json(request)
        start = _query_time(body.get("timeMin"), "timeMin")
        end = _query_time(body.get("timeMax"), "timeMax")
        if end <= start:
            raise _bad_request("timeRangeEmpty", "The specified time range is empty.")
        items = body.get("items") or []
        if len(items) > FREEBUSY_MAX_CALENDARS:
            raise _bad_request("tooManyCalendarsRequested", "Too many calendars requested.")
        calendars: dict[str, Any] = {}
        for item in items:
            calendar_id = str((item or {}).get("id", ""))
            wanted = self.owner if calendar_id == "primary" else calendar_id
            if self.calendars.known(wanted):
                calendars[calendar_id] = {"busy": self.calendars.busy(wanted, start, end)}
            else:
                calendars[calendar_id] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
        return web.json_response(
            {
                "kind": "calendar#freeBusy",
                "timeMin": _rfc3339(start),
                "timeMax": _rfc3339(end),
                "calendars": calendars,
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        calendar_id = self._calendar(request)
        query = request.query
        if query.get("orderBy") == "startTime" and query.get("singleEvents") != "true":
            raise _bad_request(
                "invalid", "The requested ordering is not available for the particular query."
            )
        start = _query_time(query["timeMin"], "timeMin") if "timeMin" in query else None
        end = _query_time(query["timeMax"], "timeMax") if "timeMax" in query else None
        events = [
            e
            for e in self.calendars.events(calendar_id)
            if e.status != "cancelled"
            and (start is None or e.ends > start)
            and (end is None or e.starts < end)
        ]
        try:
            size = min(int(query.get("maxResults", LIST_DEFAULT_PAGE)), LIST_MAX_PAGE)
            offset = _decode_page_token(query.get("pageToken"))
        except ValueError:
            raise _bad_request("invalid", "Invalid Value") from None
        page = events[offset : offset + max(size, 1)]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{len(events)}"',
            "summary": calendar_id,
            "description": "",
            "updated": _rfc3339(datetime.now(UTC)),
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 10}],
            "items": [e.resource() for e in page],
        }
        following = offset + len(page)
        if following < len(events):
            body["nextPageToken"] = _encode_page_token(following)
        return web.json_response(body)

    async def _insert(self, request: web.Request) -> web.Response:
        calendar_id = self._calendar(request)
        body = await _json(request)
        event_id = body.get("id")
        if event_id is not None and not EVENT_ID.match(str(event_id)):
            raise _bad_request("invalid", "Invalid resource id value.")
        start, end = _event_time(body.get("start"), "start"), _event_time(body.get("end"), "end")
        if _moment(end) <= _moment(start):
            raise _bad_request("timeRangeEmpty", "The specified time range is empty.")
        attendees = [str(a.get("email")) for a in body.get("attendees") or [] if a.get("email")]
        event = Event(
            id=str(event_id) if event_id else hashlib.sha1(str(body).encode()).hexdigest(),  # noqa: S324  # an id
            calendar_id=calendar_id,
            summary=str(body.get("summary") or ""),
            start=start,
            end=end,
            attendees=attendees,
            description=body.get("description"),
            location=body.get("location"),
        )
        stored = self.calendars.insert(event, send_updates=request.query.get("sendUpdates", "none"))
        return web.json_response(stored.resource())

    async def _get(self, request: web.Request) -> web.Response:
        event = self.calendars.get(self._calendar(request), request.match_info["eventId"])
        return web.json_response(event.resource())


def _fault_error(fault: Fault) -> CalendarApiError:
    if fault.status == 401:
        return CalendarApiError(401, "UNAUTHENTICATED", "authError", "Invalid Credentials")
    if fault.status == 429:
        return CalendarApiError(
            429,
            "RESOURCE_EXHAUSTED",
            "rateLimitExceeded",
            "Rate Limit Exceeded",
            domain="usageLimits",
            retry_after=fault.retry_after,
        )
    if fault.status == 404:
        return _not_found()
    return CalendarApiError(
        fault.status,
        "UNAVAILABLE",
        "backendError",
        "Backend Error",
        retry_after=fault.retry_after,
    )


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("parseError", "Parse Error") from None
    if not isinstance(body, dict):
        raise _bad_request("parseError", "Parse Error")
    return body


def _query_time(value: Any, name: str) -> datetime:
    if not value:
        raise _bad_request("required", f"Missing {name} parameter.")
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise _bad_request("invalid", "Bad Request") from None
    if moment.tzinfo is None:  # Google requires an offset in RFC 3339 query times
        raise _bad_request("invalid", "Bad Request")
    return moment


def _event_time(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
        raise _bad_request("required", f"Missing {name} time.")
    shape = {k: str(v) for k, v in value.items() if k in ("dateTime", "date", "timeZone")}
    try:
        _moment(shape)
    except ValueError:
        raise _bad_request("invalid", "Invalid start time.") from None
    return shape


def _moment(shape: dict[str, str]) -> datetime:
    if "dateTime" in shape:
        moment = datetime.fromisoformat(shape["dateTime"])
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.combine(date.fromisoformat(shape["date"]), time(), tzinfo=UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    prefix, _, digits = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    if prefix != "offset" or not digits.isdigit():
        raise ValueError(token)
    return int(digits)
