"""Slack Web API clients, configured the one way the product uses them."""

from __future__ import annotations

from slack_sdk import WebClient
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
        headers=headers,  # e.g. the job's X-Request-Id (bot/observability/correlation.py)
    )
