"""Slack Web API clients, configured the one way the product uses them."""

from __future__ import annotations

from http.client import HTTPException
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
)

WEB_API_TIMEOUT = 15  # seconds per HTTP call
RATE_LIMIT_RETRIES = 3  # each waits the Retry-After Slack sent


def make_web_client(token: str, base_url: str, headers: dict[str, str] | None = None) -> WebClient:
    """A blocking client that waits out 429s, honouring Retry-After.

    A 429 means Slack did nothing, so repeating the call is safe. A dropped connection
    does not say whether a post landed, so it is *not* retried here (slack_sdk's default
    would post twice): the job fails, and its retry looks for the message by its
    metadata before posting again.
    """
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=WEB_API_TIMEOUT,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
        headers=headers,  # e.g. the job's X-Request-Id (core/correlation.py)
    )


# Errors Slack answers when it could not act now but may soon.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Web API call is worth trying again later: Slack rate-limited us,
    was briefly down, or could not be reached. Other errors (not_in_channel, a revoked
    token, bad arguments) stay errors however often they are tried."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        return status == 429 or status >= 500 or exc.response.get("error") in TRANSIENT_ERRORS
    return isinstance(exc, URLError | TimeoutError | ConnectionError | HTTPException)


def retry_after(exc: BaseException) -> float | None:
    """The seconds Slack asked us to wait (its Retry-After), for a rate-limited call."""
    if not isinstance(exc, SlackApiError) or exc.response.status_code != 429:
        return None
    for name, value in (exc.response.headers or {}).items():
        if name.lower() == "retry-after":
            first = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(first))
            except ValueError:
                return None
    return None
