"""The request id that follows one request from its listener to every job, model call and
Slack call it causes, so one search finds all of its log lines.

It is called `correlation_id` in code, logs and the database because `request_id` already
names the `inbound_requests` row; one email to two tenants' inboxes makes two rows that
share one correlation id. It travels as a Dramatiq message option and is bound in
structlog's context variables, which is where code without a request in hand reads it.
"""

from __future__ import annotations

import uuid

import structlog

LOG_KEY = "correlation_id"
MESSAGE_OPTION = "correlation_id"  # key in a Dramatiq message's options
HEADER = "X-Request-Id"  # sent with model and Slack Web API calls


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The id bound for the request being handled on this thread or task, if any."""
    value = structlog.contextvars.get_contextvars().get(LOG_KEY)
    return str(value) if value else None


def correlation_headers() -> dict[str, str]:
    """HTTP headers naming the current request to a service we call; empty outside one."""
    correlation_id = current_correlation_id()
    return {HEADER: correlation_id} if correlation_id else {}
