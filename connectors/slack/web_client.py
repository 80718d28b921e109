"""Slack Web API clients, configured the one way the product uses them."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

WEB_API_TIMEOUT = 15  # seconds per HTTP call
RATE_LIMIT_RETRIES = 3  # each waits the Retry-After Slack sent


def make_web_client(token: str, base_url: str) -> WebClient:
    """A blocking client that waits out 429s (honouring Retry-After) and reconnects."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=WEB_API_TIMEOUT,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )
