"""A local emulator of the Zendesk Support API endpoints the Zendesk connector calls.

Serves, with Zendesk's wire shapes: search (GET /api/v2/search.json, offset pages linked
by `next_page`), a ticket (GET /api/v2/tickets/{id}.json), its comments
(GET /api/v2/tickets/{id}/comments.json, cursor pages with `meta.has_more` and
`links.next` when `page[size]` is given, offset pages otherwise) and ticket updates
(PUT /api/v2/tickets/{id}.json: a comment, a status), which honour an `Idempotency-Key`
header: a repeat with the same key and body gets the first answer and
`x-idempotency-lookup: hit` instead of acting again. Requests need
`Authorization: Bearer <token>` or Basic `email/token:<token>`.

Faults can be injected: `fail_next(status, retry_after=..., after_commit=...)`. Every
request is logged (method, path, query, body; never headers) for tests to assert on.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sandbox.background import ApiEmulator, Fault

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
SEARCH_DEFAULT_PAGE, SEARCH_MAX_PAGE = 100, 100
COMMENTS_DEFAULT_PAGE, COMMENTS_MAX_PAGE = 100, 100
AGENT_USER_ID = 9001  # the user the connected token belongs to


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    status: str
    requester_id: int
    priority: str | None = None
    tags: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def resource(self, base_url: str) -> dict[str, Any]:
        return {
            "url": f"{base_url}/api/v2/tickets/{self.id}.json",
            "id": self.id,
            "subject": self.subject,
            "raw_subject": self.subject,
            "description": self.description,
            "status": self.status,
            "priority": self.priority,
            "requester_id": self.requester_id,
            "assignee_id": None,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Comment:
    id: int
    author_id: int
    body: str
    public: bool
    created_at: str = field(default_factory=_now)

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "Comment",
            "author_id": self.author_id,
            "body": self.body,
            "html_body": f'<div class="zd-comment"><p>{self.body}</p></div>',
            "plain_body": self.body,
            "public": self.public,
            "attachments": [],
            "created_at": self.created_at,
        }


class ZendeskApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        description: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.description, self.details = (
            status,
            error,
            description,
            details,
        )
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error}
        if self.description is not None:
            body["description"] = self.description
        if self.details is not None:
            body["details"] = self.details
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None
        return web.json_response(body, status=self.status, headers=headers)


def _not_found() -> ZendeskApiError:
    return ZendeskApiError(404, "RecordNotFound", "Not found")


def _invalid(field_name: str, description: str) -> ZendeskApiError:
    return ZendeskApiError(
        422,
        "RecordInvalid",
        "Record validation errors",
        {field_name: [{"description": description, "error": "InvalidValue"}]},
    )


class Helpdesk:
    """One Zendesk account's tickets; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ticket_ids = itertools.count(1)
        self._comment_ids = itertools.count(50001)
        self.tickets: dict[int, Ticket] = {}
        self.comments: dict[int, list[Comment]] = {}

    def add_ticket(
        self,
        subject: str,
        description: str,
        *,
        status: str = "open",
        requester_id: int = 501,
        tags: list[str] | None = None,
    ) -> Ticket:
        with self._lock:
            ticket = Ticket(
                next(self._ticket_ids), subject, description, status, requester_id, tags=tags or []
            )
            self.tickets[ticket.id] = ticket
            first = Comment(next(self._comment_ids), requester_id, description, True)
            self.comments[ticket.id] = [first]
            return ticket

    def add_comment(self, ticket_id: int, body: str, *, public: bool, author_id: int) -> Comment:
        with self._lock:
            comment = Comment(next(self._comment_ids), author_id, body, public)
            self.comments[ticket_id].append(comment)
            return comment

    def ticket(self, ticket_id: int) -> Ticket:
        with self._lock:
            found = self.tickets.get(ticket_id)
        if found is None:
            raise _not_found()
        return found

    def comments_of(self, ticket_id: int) -> list[Comment]:
        self.ticket(ticket_id)
        with self._lock:
            return list(self.comments[ticket_id])


class ZendeskEmulator(ApiEmulator):
    """The Zendesk Support API for one account on 127.0.0.1, from a background thread."""

    def __init__(
        self,
        token: str = "zendesk-emulator-token",  # noqa: S107  # a local fake
        email: str = "agent@example.com",
    ) -> None:
        self.token = token
        self.email = email
        self.helpdesk = Helpdesk()
        self._idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        super().__init__(self._app())

    @property
    def api_url(self) -> str:
        return self._server.url

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v2/search.json", self._search)
        app.router.add_get("/api/v2/tickets/{id}.json", self._ticket)
        app.router.add_put("/api/v2/tickets/{id}.json", self._update)
        app.router.add_get("/api/v2/tickets/{id}/comments.json", self._comments)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self._record(request)
        try:
            if not self._authorized(request.headers.get("Authorization", "")):
                raise ZendeskApiError(401, "Couldn't authenticate you")
            return await self._answer_or_fault(request, handler, _fault_error)
        except ZendeskApiError as exc:
            return exc.response()

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            return value == self.token
        if scheme == "Basic":
            try:
                decoded = base64.b64decode(value).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            return decoded == f"{self.email}/token:{self.token}"
        return False

    async def _search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        terms = query.split()
        if not any(t == "type:ticket" for t in terms):
            raise ZendeskApiError(
                400, "InvalidSearch", "this emulator searches tickets only (type:ticket)"
            )
        page, per_page = _offset_page(request, SEARCH_DEFAULT_PAGE, SEARCH_MAX_PAGE)
        found = [t for t in self.helpdesk.tickets.values() if _ticket_matches(t, terms)]
        found.sort(key=lambda t: t.id)
        chunk = found[(page - 1) * per_page : page * per_page]
        results = [{**t.resource(self.api_url), "result_type": "ticket"} for t in chunk]

        def link(number: int) -> str:
            params = {"page": number, "per_page": per_page, "query": query}
            return f"{self.api_url}/api/v2/search.json?{urlencode(params)}"

        return web.json_response(
            {
                "results": results,
                "facets": None,
                "next_page": link(page + 1) if page * per_page < len(found) else None,
                "previous_page": link(page - 1) if page > 1 else None,
                "count": len(found),
            }
        )

    async def _ticket(self, request: web.Request) -> web.Response:
        ticket = self.helpdesk.ticket(_ticket_id(request))
        return web.json_response({"ticket": ticket.resource(self.api_url)})

    async def _comments(self, request: web.Request) -> web.Response:
        comments = self.helpdesk.comments_of(_ticket_id(request))
        base = f"{self.api_url}{request.path}"
        size = request.query.get("page[size]")
        if size is None:
            page, per_page = _offset_page(request, COMMENTS_DEFAULT_PAGE, COMMENTS_MAX_PAGE)
            chunk = comments[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(comments)
            return web.json_response(
                {
                    "comments": [c.resource() for c in chunk],
                    "next_page": f"{base}?page={page + 1}&per_page={per_page}" if more else None,
                    "previous_page": f"{base}?page={page - 1}&per_page={per_page}"
                    if page > 1
                    else None,
                    "count": len(comments),
                }
            )
        per_page = min(_int(size, "page[size]"), COMMENTS_MAX_PAGE)
        after = request.query.get("page[after]")
        start = _decode_cursor(after) if after else 0
        chunk = comments[start : start + per_page]
        end = start + len(chunk)
        more = end < len(comments)
        after_cursor = _encode_cursor(end) if chunk else None
        return web.json_response(
            {
                "comments": [c.resource() for c in chunk],
                "meta": {
                    "has_more": more,
                    "after_cursor": after_cursor,
                    "before_cursor": _encode_cursor(start) if chunk else None,
                },
                "links": {
                    "next": f"{base}?{urlencode({'page[size]': per_page, 'page[after]': after_cursor})}"
                    if more and after_cursor
                    else None,
                    "prev": None,
                },
            }
        )

    async def _update(self, request: web.Request) -> web.Response:
        ticket_id = _ticket_id(request)
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            with self._lock:
                earlier = self._idempotent.get(key)
            if earlier is not None:
                if earlier[0] != f"{request.path}\x00{raw.decode()}":
                    raise ZendeskApiError(
                        400,
                        "IdempotentRequestError",
                        "Request parameters do not match the original request for this key",
                    )
                return web.json_response(
                    earlier[2], status=earlier[1], headers={"x-idempotency-lookup": "hit"}
                )
        try:
            body = json.loads(raw)
        except ValueError:
            raise ZendeskApiError(400, "InvalidJSON", "The request body is not JSON") from None
        changes = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            raise ZendeskApiError(400, "InvalidParameter", "ticket parameter is missing")
        answer = self._apply(ticket_id, changes)
        headers = {}
        if key is not None:
            with self._lock:
                self._idempotent[key] = (f"{request.path}\x00{raw.decode()}", 200, answer)
            headers["x-idempotency-lookup"] = "miss"
        return web.json_response(answer, headers=headers)

    def _apply(self, ticket_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        ticket = self.helpdesk.ticket(ticket_id)
        if ticket.status == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        status = changes.get("status")
        if status is not None and status not in STATUSES:
            raise _invalid("status", f"Status: {status} is not valid")
        comment = changes.get("comment")
        if comment is not None and not str((comment or {}).get("body") or "").strip():
            raise _invalid("comment", "Comment: body cannot be blank")
        events: list[dict[str, Any]] = []
        if comment is not None:
            added = self.helpdesk.add_comment(
                ticket_id,
                str(comment["body"]),
                public=bool(comment.get("public", True)),
                author_id=AGENT_USER_ID,
            )
            events.append({**added.resource(), "type": "Comment"})
        if status is not None and status != ticket.status:
            events.append(
                {
                    "type": "Change",
                    "field_name": "status",
                    "value": status,
                    "previous_value": ticket.status,
                }
            )
            ticket.status = status
        ticket.updated_at = _now()
        return {
            "ticket": ticket.resource(self.api_url),
            "audit": {
                "id": next(self.helpdesk._comment_ids),
                "ticket_id": ticket_id,
                "author_id": AGENT_USER_ID,
                "created_at": ticket.updated_at,
                "events": events,
            },
        }


def _ticket_matches(ticket: Ticket, terms: list[str]) -> bool:
    for term in terms:
        name, _, value = term.partition(":")
        if term == "type:ticket":
            continue
        if value and name == "status":
            if ticket.status != value:
                return False
        elif value and name == "tags":
            if value not in ticket.tags:
                return False
        elif term.lower() not in f"{ticket.subject} {ticket.description}".lower():
            return False
    return True


def _fault_error(fault: Fault) -> ZendeskApiError:
    if fault.status == 401:
        return ZendeskApiError(401, "Couldn't authenticate you")
    if fault.status == 429:
        return ZendeskApiError(
            429,
            "APIRateLimitExceeded",
            "Number of allowed API requests per minute exceeded",
            retry_after=fault.retry_after,
        )
    return ZendeskApiError(
        fault.status, "ServiceUnavailable", "Service unavailable", retry_after=fault.retry_after
    )


def _ticket_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise _not_found()
    return int(value)


def _int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ZendeskApiError(
            400, "InvalidPaginationParameter", f"{name} must be a number"
        ) from None
    if number < 1:
        raise ZendeskApiError(400, "InvalidPaginationParameter", f"{name} must be positive")
    return number


def _offset_page(request: web.Request, default: int, largest: int) -> tuple[int, int]:
    page = _int(request.query.get("page", "1"), "page")
    per_page = min(_int(request.query.get("per_page", str(default)), "per_page"), largest)
    return page, per_page


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        name, _, value = base64.urlsafe_b64decode(cursor).decode().partition(":")
        if name == "pos" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise ZendeskApiError(400, "InvalidPaginationParameter", "page[after] is not a valid cursor")
