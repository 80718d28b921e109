"""Send one outbound email through the Gmail API (users.messages.send), at most once.

Unlike SMTP, Gmail can be asked afterwards: an attempt that died while the send request
was in flight ('committing') is followed by a search of the mailbox for the message's
Message-ID (`rfc822msgid:`) and, in case Gmail rewrote that header, for a recent sent
message carrying our X-Chatops-Message-Id. Found: recorded as sent, not sent again.
The send request itself is never retried by the client library (num_retries=0): a
retry of a request that reached Gmail would deliver twice; ours goes through the search.

Replies join the customer's Gmail thread: the thread id comes from an earlier reply in
the conversation, else from looking up the message being answered.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

import httplib2  # no stubs shipped
import structlog
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from psycopg import Connection

from connectors.email.outbound import (
    Outbound,
    PermanentSendError,
    SendResult,
    TransientSendError,
    mark,
    mark_sent,
    record_outbound,
    sending_lock,
    settled_earlier,
)
from connectors.email.parse import MSG_ID

log = structlog.get_logger(__name__)

GMAIL_SCOPES = (
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
)
IDEMPOTENCY_HEADER = "X-Chatops-Message-Id"
READ_RETRIES = 2  # the client library's own retries, for read-only calls only
SEARCH_SLACK_SECONDS = 120  # how far before the first attempt the sent-mail search reaches
MAX_CANDIDATES = 25  # recent sent messages inspected when the Message-ID search misses
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def gmail_service(
    *, credentials: Any = None, http: httplib2.Http | None = None, api_url: str | None = None
) -> Any:
    """A googleapiclient Gmail resource; `api_url` points it at an emulator."""
    options = {"api_endpoint": api_url} if api_url else None
    return build(
        "gmail",
        "v1",
        http=http,
        credentials=credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options=options,
    )


def delegated_credentials(credentials_file: str, gmail_user: str) -> Any:
    """Service-account credentials acting as `gmail_user` (domain-wide delegation)."""
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        credentials_file, scopes=list(GMAIL_SCOPES)
    )
    return credentials.with_subject(gmail_user)


def send_via_gmail(
    conn: Connection[dict[str, Any]],
    service: Any,
    *,
    tenant_id: int,
    conversation_id: int | None,
    message: EmailMessage,
    user_id: str = "me",
    thread_id: str | None = None,
) -> SendResult:
    """Send `message` (built with its Message-ID) unless an earlier attempt already did.

    Raises TransientSendError (retry later), PermanentSendError (refused) or SendBusy.
    """
    if IDEMPOTENCY_HEADER not in message:
        message = copy.deepcopy(message)  # the caller's message stays as built
        message[IDEMPOTENCY_HEADER] = str(message["Message-ID"])
    recorded = record_outbound(
        conn,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        message=message,
        transport="gmail",
    )
    with sending_lock(conn, recorded) as outbound:
        earlier = settled_earlier(outbound)
        if earlier is not None:
            return earlier
        if outbound.status in ("committing", "unknown"):
            found = _find_sent(service, user_id, outbound)
            if found is not None:
                log.info("email.found_after_retry", message_id=outbound.message_id)
                return mark_sent(
                    conn,
                    outbound,
                    provider_message_id=found["id"],
                    provider_thread_id=found.get("threadId"),
                )
        thread = thread_id or _thread_for(conn, service, user_id, outbound, message)
        mark(conn, outbound, "committing", count_attempt=True)
        body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(outbound.raw).decode("ascii")}
        if thread:
            body["threadId"] = thread
        try:
            sent = service.users().messages().send(userId=user_id, body=body).execute(num_retries=0)
        except HttpError as exc:
            status = int(exc.resp.status)
            if status in RETRYABLE_STATUSES:
                # Gmail may have sent it before failing; 'committing' makes the next
                # attempt search first.
                raise TransientSendError(f"Gmail answered {status}") from None
            mark(conn, outbound, "failed", error=f"Gmail refused: {status} {_reason(exc)}")
            raise PermanentSendError(f"Gmail refused the message: {status}") from None
        except (TimeoutError, OSError, httplib2.HttpLib2Error) as exc:
            raise TransientSendError(f"Gmail unreachable: {type(exc).__name__}") from None
        log.info("email.sent", transport="gmail", message_id=outbound.message_id)
        return mark_sent(
            conn, outbound, provider_message_id=sent["id"], provider_thread_id=sent.get("threadId")
        )


def find_by_message_id(service: Any, user_id: str, message_id: str) -> dict[str, Any] | None:
    """The mailbox's message with this Message-ID ({'id', 'threadId'}), if any."""
    bare = message_id.strip().strip("<>")
    response = (
        service.users()
        .messages()
        .list(userId=user_id, q=f"rfc822msgid:{bare}", includeSpamTrash=True, maxResults=1)
        .execute(num_retries=READ_RETRIES)
    )
    found = response.get("messages") or []
    return dict(found[0]) if found else None


def _find_sent(service: Any, user_id: str, outbound: Outbound) -> dict[str, Any] | None:
    try:
        found = find_by_message_id(service, user_id, outbound.message_id)
        if found is not None:
            return found
        since = int(outbound.created_at.timestamp()) - SEARCH_SLACK_SECONDS
        response = (
            service.users()
            .messages()
            .list(userId=user_id, q=f"in:sent after:{since}", maxResults=MAX_CANDIDATES)
            .execute(num_retries=READ_RETRIES)
        )
        for candidate in response.get("messages") or []:
            if _carries_key(service, user_id, candidate["id"], outbound.message_id):
                return dict(candidate)
    except (HttpError, OSError, httplib2.HttpLib2Error) as exc:
        # Not knowing is not "not sent": sending now could deliver twice.
        raise TransientSendError(f"cannot check Gmail for an earlier send: {exc}") from None
    return None


def _carries_key(service: Any, user_id: str, gmail_id: str, message_id: str) -> bool:
    message = (
        service.users()
        .messages()
        .get(
            userId=user_id,
            id=gmail_id,
            format="metadata",
            metadataHeaders=[IDEMPOTENCY_HEADER, "Message-ID"],
        )
        .execute(num_retries=READ_RETRIES)
    )
    headers = (message.get("payload") or {}).get("headers") or []
    return any(
        str(h.get("name", "")).lower() in (IDEMPOTENCY_HEADER.lower(), "message-id")
        and message_id in str(h.get("value", ""))
        for h in headers
    )


def _thread_for(
    conn: Connection[dict[str, Any]],
    service: Any,
    user_id: str,
    outbound: Outbound,
    message: EmailMessage,
) -> str | None:
    if outbound.conversation_id is not None:
        row = conn.execute(
            """SELECT provider_thread_id FROM email_messages
                WHERE tenant_id = %s AND conversation_id = %s AND direction = 'outbound'
                  AND provider_thread_id IS NOT NULL
                ORDER BY id DESC LIMIT 1""",
            (outbound.tenant_id, outbound.conversation_id),
        ).fetchone()
        if row is not None:
            return str(row["provider_thread_id"])
    for answered in _answered_ids(message):
        try:
            found = find_by_message_id(service, user_id, answered)
        except (HttpError, OSError, httplib2.HttpLib2Error):
            continue  # without a thread id Gmail still threads by References
        if found is not None and found.get("threadId"):
            return str(found["threadId"])
    return None


def _answered_ids(message: EmailMessage) -> Iterable[str]:
    ids = [f"<{i}>" for i in MSG_ID.findall(str(message.get("In-Reply-To", "")))]
    ids.extend(reversed([f"<{i}>" for i in MSG_ID.findall(str(message.get("References", "")))]))
    return dict.fromkeys(ids)


def _reason(exc: HttpError) -> str:
    try:
        return str(exc.reason)[:200]
    except Exception:
        return ""
