"""A local emulator of the Gmail API endpoints the product calls, with Google's wire shapes.

Serves users.messages.send (JSON `raw`, or the /upload media form),
users.messages.list/get, users.messages.attachments.get, users.threads.list/get and
users.getProfile for one mailbox, so google-api-python-client can be pointed at it
(client_options={"api_endpoint": emulator.api_url}). Search (`q`) understands the
operators the product uses: rfc822msgid:, in:/label:, from:, to:, subject:, after:,
before: and plain words.

Threading follows Gmail's rules: a sent message joins `threadId` only if its subject
matches the thread's (Re:/Fwd: aside); received mail (`deliver`) joins the thread of a
message it references. Faults can be injected: `fail_next_send(status, after_commit)`
makes the next send answer an error, optionally after keeping the message, which is
what a timeout or a 5xx after Gmail accepted it looks like to the client.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from aiohttp import web

from sandbox.background import ServedEmulator

PREFIX = "/gmail/v1/users/{userId}"
UPLOAD_PREFIX = "/upload/gmail/v1/users/{userId}"
DEFAULT_PAGE = 100
MAX_PAGE = 500
SNIPPET_CHARS = 200
SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv)\s*:\s*)+", re.IGNORECASE)
MSG_ID = re.compile(r"<([^<>\s]+)>")
FIRST_ID = 0x18C0_0000_0000_0000  # Gmail ids are 16 hex digits


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    internal_date_ms: int
    history_id: int
    parsed: EmailMessage = field(repr=False)

    def header(self, name: str) -> str:
        value = self.parsed.get(name)
        return str(value) if value is not None else ""

    def message_ids(self) -> list[str]:
        return MSG_ID.findall(self.header("Message-ID"))


class GmailApiError(Exception):
    def __init__(self, code: int, status: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.reason, self.message = code, status, reason, message

    def response(self) -> web.Response:
        error = {"message": self.message, "domain": "global", "reason": self.reason}
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [error],
                "status": self.status,
            }
        }
        return web.json_response(body, status=self.code)


def _not_found() -> GmailApiError:
    return GmailApiError(404, "NOT_FOUND", "notFound", "Requested entity was not found.")


def _bad_request(message: str) -> GmailApiError:
    return GmailApiError(400, "INVALID_ARGUMENT", "invalidArgument", message)


class Mailbox:
    """One user's messages and threads; every method is safe to call from any thread."""

    def __init__(self, address: str, *, rewrite_message_ids: bool = False) -> None:
        self.address = address
        # Some Gmail accounts replace the Message-ID of mail sent through the API.
        self.rewrite_message_ids = rewrite_message_ids
        self._lock = threading.Lock()
        self._messages: dict[str, StoredMessage] = {}
        self._next_id = FIRST_ID
        self._history = 1000
        self._faults: list[tuple[int, bool]] = []

    def add(self, raw: bytes, labels: list[str], thread_id: str | None) -> StoredMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._next_id += 1
            self._history += 1
            message_id = f"{self._next_id:016x}"
            thread = thread_id or self._thread_by_references(parsed) or message_id
            stored = StoredMessage(
                id=message_id,
                thread_id=thread,
                raw=raw,
                label_ids=labels,
                internal_date_ms=int(time.time() * 1000),
                history_id=self._history,
                parsed=parsed,
            )
            self._messages[message_id] = stored
            return stored

    def send(self, raw: bytes, thread_id: str | None) -> StoredMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        recipients = [
            a for f in ("to", "cc", "bcc") for _, a in getaddresses(parsed.get_all(f, []))
        ]
        if not any("@" in a for a in recipients):
            raise _bad_request("Recipient address required")
        chosen = None
        if thread_id is not None:
            thread = self.thread(thread_id)  # 404 for an unknown thread, as Gmail does
            if _bare_subject(str(parsed.get("subject", ""))) == _bare_subject(
                thread[0].header("Subject")
            ):
                chosen = thread_id
        fault = self._take_fault()
        if fault is not None and not fault[1]:
            raise _error(fault[0])
        if self.rewrite_message_ids:
            del parsed["Message-ID"]
            parsed["Message-ID"] = f"<CA{time.monotonic_ns():x}@mail.gmail.com>"
            raw = parsed.as_bytes(policy=policy.SMTP)
        stored = self.add(raw, ["SENT"], chosen or f"new:{time.monotonic_ns()}")
        if stored.thread_id.startswith("new:"):
            stored.thread_id = stored.id
        if fault is not None:
            raise _error(fault[0])
        return stored

    def get(self, message_id: str) -> StoredMessage:
        with self._lock:
            found = self._messages.get(message_id)
        if found is None:
            raise _not_found()
        return found

    def thread(self, thread_id: str) -> list[StoredMessage]:
        with self._lock:
            messages = [m for m in self._messages.values() if m.thread_id == thread_id]
        if not messages:
            raise _not_found()
        return sorted(messages, key=lambda m: (m.internal_date_ms, m.id))

    def search(
        self, query: str, labels: list[str], include_spam_trash: bool
    ) -> list[StoredMessage]:
        matcher = _Query(query)
        with self._lock:
            messages = list(self._messages.values())
        found = [
            m
            for m in messages
            if matcher.matches(m)
            and all(label in m.label_ids for label in labels)
            and (include_spam_trash or not {"SPAM", "TRASH"} & set(m.label_ids))
        ]
        return sorted(found, key=lambda m: (m.internal_date_ms, m.id), reverse=True)

    def all(self) -> list[StoredMessage]:
        with self._lock:
            return sorted(self._messages.values(), key=lambda m: (m.internal_date_ms, m.id))

    def fail_next_send(self, status: int, *, after_commit: bool) -> None:
        with self._lock:
            self._faults.append((status, after_commit))

    def _take_fault(self) -> tuple[int, bool] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _thread_by_references(self, parsed: EmailMessage) -> str | None:
        wanted = MSG_ID.findall(
            str(parsed.get("in-reply-to", "")) + str(parsed.get("references", ""))
        )
        for message in reversed(list(self._messages.values())):
            if set(message.message_ids()) & set(wanted):
                return message.thread_id
        return None


def _error(status: int) -> GmailApiError:
    if status < 500:
        return GmailApiError(status, "INVALID_ARGUMENT", "invalidArgument", "Invalid request")
    return GmailApiError(status, "UNAVAILABLE", "backendError", "Backend Error")


def _bare_subject(subject: str) -> str:
    return " ".join(SUBJECT_PREFIX.sub("", subject).split()).lower()


class _Query:
    """Gmail's search syntax, for the operators the product uses."""

    def __init__(self, query: str) -> None:
        try:
            terms = shlex.split(query or "")
        except ValueError:
            terms = (query or "").split()
        self.terms = [t.partition(":") if ":" in t else ("", "", t) for t in terms]

    def matches(self, message: StoredMessage) -> bool:
        return all(self._term(message, op.lower(), value) for op, _, value in self.terms)

    def _term(self, message: StoredMessage, op: str, value: str) -> bool:
        value_lower = value.lower()
        if op == "rfc822msgid":
            return value.strip("<>") in message.message_ids()
        if op in ("in", "label"):
            return value_lower == "anywhere" or value.upper() in message.label_ids
        if op in ("from", "to"):
            fields = ["from"] if op == "from" else ["to", "cc", "bcc"]
            return any(value_lower in message.header(f).lower() for f in fields)
        if op == "subject":
            return value_lower in message.header("Subject").lower()
        if op in ("after", "before"):
            limit = _epoch_ms(value)
            if op == "after":
                return message.internal_date_ms >= limit
            return message.internal_date_ms < limit
        word = f"{op}:{value}" if op else value
        return word.lower() in (message.header("Subject") + " " + _text(message.parsed)).lower()


def _epoch_ms(value: str) -> int:
    if value.isdigit():
        return int(value) * 1000
    try:
        day = datetime.strptime(value, "%Y/%m/%d").replace(tzinfo=UTC)
    except ValueError:
        raise _bad_request(f"Invalid date: {value}") from None
    return int(day.timestamp() * 1000)


def _text(message: Message) -> str:
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        return str(body.get_content())
    except (LookupError, ValueError):
        return ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


# --- resource shapes ------------------------------------------------------------------------


def message_resource(
    message: StoredMessage, fmt: str = "full", metadata_headers: list[str] | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": list(message.label_ids),
        "snippet": _snippet(message),
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date_ms),
        "sizeEstimate": len(message.raw),
    }
    if fmt == "raw":
        resource["raw"] = _b64(message.raw)
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers or []}
        headers = _headers(message.parsed)
        resource["payload"] = {
            "mimeType": message.parsed.get_content_type(),
            "headers": [h for h in headers if not wanted or h["name"].lower() in wanted],
        }
    elif fmt == "full":
        resource["payload"] = _part(message.id, message.parsed, "")
    return resource


def _snippet(message: StoredMessage) -> str:
    text = " ".join(_text(message.parsed).split())
    return html.escape(text[:SNIPPET_CHARS])


def _headers(part: Message) -> list[dict[str, str]]:
    return [{"name": name, "value": str(value)} for name, value in part.items()]


def _part(message_id: str, part: Message, part_id: str) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": _headers(part),
    }
    children = part.get_payload()
    if part.is_multipart() and isinstance(children, list):
        prefix = f"{part_id}." if part_id else ""
        shape["body"] = {"size": 0}
        shape["parts"] = [
            _part(message_id, child, f"{prefix}{index}") for index, child in enumerate(children)
        ]
        return shape
    data = part.get_payload(decode=True)
    data = data if isinstance(data, bytes) else b""
    if shape["filename"]:
        shape["body"] = {"attachmentId": _attachment_id(message_id, part_id), "size": len(data)}
    else:
        shape["body"] = {"size": len(data), "data": _b64(data)}
    return shape


def _attachment_id(message_id: str, part_id: str) -> str:
    return _b64(f"{message_id}:{part_id}".encode())


def _find_part(message: Message, part_id: str) -> Message | None:
    part = message
    for index in (int(i) for i in part_id.split(".") if i):
        children = part.get_payload()
        if not isinstance(children, list) or index >= len(children):
            return None
        child = children[index]
        if not isinstance(child, Message):
            return None
        part = child
    return part


# --- HTTP -------------------------------------------------------------------------------------


class GmailEmulator(ServedEmulator):
    """The Gmail API for one mailbox on 127.0.0.1, served from a background thread."""

    def __init__(
        self,
        address: str = "agent@sandbox.example",
        token: str | None = None,
        *,
        rewrite_message_ids: bool = False,
    ) -> None:
        self.mailbox = Mailbox(address, rewrite_message_ids=rewrite_message_ids)
        self.token = token  # None: requests need no Authorization header
        super().__init__(self._app())

    @property
    def api_url(self) -> str:
        """The `api_endpoint` for googleapiclient's client_options."""
        return self._server.url + "/"

    def deliver(self, raw: bytes) -> StoredMessage:
        """Mail arriving in the inbox, threaded by its references like Gmail does."""
        return self.mailbox.add(raw, ["INBOX", "UNREAD"], None)

    def sent(self) -> list[StoredMessage]:
        return [m for m in self.mailbox.all() if "SENT" in m.label_ids]

    def fail_next_send(self, status: int = 503, *, after_commit: bool = True) -> None:
        self.mailbox.fail_next_send(status, after_commit=after_commit)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_post(f"{PREFIX}/messages/send", self._send)
        app.router.add_post(f"{UPLOAD_PREFIX}/messages/send", self._send_upload)
        app.router.add_get(f"{PREFIX}/messages", self._list_messages)
        app.router.add_get(f"{PREFIX}/messages/{{id}}", self._get_message)
        app.router.add_get(
            f"{PREFIX}/messages/{{messageId}}/attachments/{{id}}", self._get_attachment
        )
        app.router.add_get(f"{PREFIX}/threads", self._list_threads)
        app.router.add_get(f"{PREFIX}/threads/{{id}}", self._get_thread)
        app.router.add_get(f"{PREFIX}/profile", self._profile)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            self._authorize(request)
            response: web.StreamResponse = await handler(request)
            return response
        except GmailApiError as exc:
            return exc.response()

    def _authorize(self, request: web.Request) -> None:
        if (
            self.token is not None
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            raise GmailApiError(
                401,
                "UNAUTHENTICATED",
                "authError",
                "Request had invalid authentication credentials.",
            )
        user = request.match_info.get("userId", "me")
        if user not in ("me", self.mailbox.address):
            raise GmailApiError(
                403, "PERMISSION_DENIED", "forbidden", f"Delegation denied for {user}"
            )

    async def _send(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("Invalid JSON payload received.") from None
        if not isinstance(body, dict) or not body.get("raw"):
            raise _bad_request(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        raw = _decode_raw(str(body["raw"]))
        return self._sent_response(raw, body.get("threadId"))

    async def _send_upload(self, request: web.Request) -> web.Response:
        """The media upload form: the body is the message itself (message/rfc822)."""
        kind = request.query.get("uploadType", "media")
        if kind != "media":
            raise _bad_request(f"this emulator supports uploadType=media only, not {kind}")
        return self._sent_response(await request.read(), None)

    def _sent_response(self, raw: bytes, thread_id: str | None) -> web.Response:
        stored = self.mailbox.send(raw, thread_id)
        return web.json_response(
            {"id": stored.id, "threadId": stored.thread_id, "labelIds": stored.label_ids}
        )

    async def _list_messages(self, request: web.Request) -> web.Response:
        found = self._search(request)
        page, token = _page(found, request)
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self.mailbox.get(request.match_info["id"])
        fmt = request.query.get("format", "full")
        if fmt not in ("full", "metadata", "minimal", "raw"):
            raise _bad_request(f"Invalid value at 'format' ({fmt})")
        return web.json_response(
            message_resource(message, fmt, request.query.getall("metadataHeaders", []))
        )

    async def _get_attachment(self, request: web.Request) -> web.Response:
        message = self.mailbox.get(request.match_info["messageId"])
        try:
            owner, _, part_id = (
                base64.urlsafe_b64decode(request.match_info["id"]).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise _bad_request("Invalid attachment token") from None
        part = _find_part(message.parsed, part_id) if owner == message.id else None
        if part is None:
            raise _not_found()
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        return web.json_response(
            {"attachmentId": request.match_info["id"], "size": len(data), "data": _b64(data)}
        )

    async def _list_threads(self, request: web.Request) -> web.Response:
        newest: dict[str, StoredMessage] = {}
        for message in self._search(request):
            newest.setdefault(message.thread_id, message)
        threads = list(newest.values())
        page, token = _page(threads, request)
        body: dict[str, Any] = {"resultSizeEstimate": len(threads)}
        if page:
            body["threads"] = [
                {"id": m.thread_id, "snippet": _snippet(m), "historyId": str(m.history_id)}
                for m in page
            ]
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    async def _get_thread(self, request: web.Request) -> web.Response:
        messages = self.mailbox.thread(request.match_info["id"])
        fmt = request.query.get("format", "full")
        headers = request.query.getall("metadataHeaders", [])
        return web.json_response(
            {
                "id": request.match_info["id"],
                "historyId": str(max(m.history_id for m in messages)),
                "messages": [message_resource(m, fmt, headers) for m in messages],
            }
        )

    async def _profile(self, request: web.Request) -> web.Response:
        messages = self.mailbox.all()
        return web.json_response(
            {
                "emailAddress": self.mailbox.address,
                "messagesTotal": len(messages),
                "threadsTotal": len({m.thread_id for m in messages}),
                "historyId": str(max((m.history_id for m in messages), default=1)),
            }
        )

    def _search(self, request: web.Request) -> list[StoredMessage]:
        include = request.query.get("includeSpamTrash", "false").lower() == "true"
        return self.mailbox.search(
            request.query.get("q", ""), request.query.getall("labelIds", []), include
        )


def _decode_raw(raw: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise _bad_request("Invalid value for ByteString: " + raw[:20]) from None


def _page(items: list[Any], request: web.Request) -> tuple[list[Any], str | None]:
    try:
        size = min(int(request.query.get("maxResults", DEFAULT_PAGE)), MAX_PAGE)
        start = int(request.query.get("pageToken", "0") or 0)
    except ValueError:
        raise _bad_request("Invalid maxResults or pageToken") from None
    page = items[start : start + max(size, 1)]
    following = start + len(page)
    return page, str(following) if following < len(items) else None
