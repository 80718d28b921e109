"""The REST client every connector shares: timeouts, retries, rate limits, readable errors.

Synchronous on purpose: tools run in the worker's Dramatiq threads. A request is retried
with exponential backoff on transient failures (5xx, timeouts, refused connections) only
when repeating it cannot do anything twice (reads, and writes the caller marks
idempotent); a 429 is always waited out, for as long as its Retry-After asks and no
longer than a ceiling, because the server did not act on it. Whatever still fails
becomes a `ConnectorError` whose message is written for people: the agent relays it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds for each HTTP request
DEFAULT_MAX_RETRIES = 3  # further attempts after the first, transient failures only
DEFAULT_BACKOFF = 0.5  # seconds before the first retry; doubles each time
MAX_BACKOFF = 8.0  # seconds, the longest wait between two retries
DEFAULT_MAX_RETRY_AFTER = 30.0  # seconds: a 429 asking for longer fails the call instead
MAX_PAGES = 20  # pages a paginated read follows at most, whatever the server says
MAX_MESSAGE_CHARS = 300  # of an API's error message passed on to people


class ConnectorError(Exception):
    """A connector call that failed; `message` says why in plain words, for people.

    `transient` failures (rate limits, outages) may succeed later; the others (a rejected
    token, a missing record, invalid input) will not until someone changes something.
    """

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_BACKOFF  # seconds
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER  # seconds

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first)."""
        return float(min(MAX_BACKOFF, self.backoff * 2**attempt))


@dataclass(frozen=True)
class RestClient:
    """One service's API, called with one tenant's credentials."""

    http: httpx.Client
    service: str  # the name people know it by: "HubSpot"
    connector: str  # the name `/agent connect` takes: "hubspot"
    base_url: str
    # The credentials' headers (Authorization...): never shown in a repr or a log line.
    auth_headers: Mapping[str, str] = field(repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params, idempotent=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> dict[str, Any]:
        """The decoded JSON body of a successful call; raises ConnectorError otherwise.

        `path` is relative to the base URL, or an absolute URL the API gave us (a next
        page), which must then be on the same host.
        """
        url = self._url(path)
        attempt = 0
        while True:
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={**self.auth_headers, **(headers or {})},
                )
            except httpx.TransportError as exc:
                if idempotent and attempt < self.retry.max_retries:
                    self._wait(self.retry.delay(attempt), method, path, f"{type(exc).__name__}")
                    attempt += 1
                    continue
                raise ConnectorError(
                    f"{self.service} could not be reached ({type(exc).__name__}); try again later",
                    transient=True,
                ) from None
            if response.status_code == 429:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                wait = self.retry.delay(attempt) if wait is None else wait
                if wait > self.retry.max_retry_after or attempt >= self.retry.max_retries:
                    raise ConnectorError(
                        f"{self.service} is rate limiting us; try again in {round(wait)} seconds",
                        status=429,
                        transient=True,
                    )
                self._wait(wait, method, path, "429")
                attempt += 1
                continue
            if response.status_code >= 500 and idempotent and attempt < self.retry.max_retries:
                self._wait(self.retry.delay(attempt), method, path, str(response.status_code))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise self._error(response)
            return _json_body(response)

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if httpx.URL(path).host != httpx.URL(self.base_url).host:
                # Credentials go with every request: never to a host the API named itself.
                raise ConnectorError(f"{self.service} sent a link to another host")
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _wait(self, seconds: float, method: str, path: str, reason: str) -> None:
        log.info(
            "connector.retry",
            service=self.connector,
            method=method,
            path=path.split("?")[0],
            reason=reason,
            wait_seconds=round(seconds, 2),
        )
        self.sleep(seconds)

    def _error(self, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        detail = api_message(response)
        log.info("connector.error", service=self.connector, status=status)
        if status == 401:
            message = (
                f"{self.service} rejected the token: ask an admin to reconnect with "
                f"`/agent connect {self.connector}`"
            )
        elif status == 403:
            message = f"{self.service} refused: the connected token is not allowed to do this" + (
                f" ({detail})" if detail else ""
            )
        elif status == 404:
            message = f"{self.service}: not found"
        elif status >= 500:
            message = f"{self.service} had a problem (HTTP {status}); try again later"
        else:
            message = f"{self.service} refused the request: {detail or f'HTTP {status}'}"
        return ConnectorError(message, status=status, transient=status >= 500)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_message(response: httpx.Response) -> str:
    """The API's own explanation of an error, from the usual JSON error shapes."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for key in ("message", "description"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    details = body.get("details")
    if isinstance(details, dict):
        for problems in details.values():
            for problem in problems if isinstance(problems, list) else []:
                if isinstance(problem, dict) and isinstance(problem.get("description"), str):
                    parts.append(problem["description"])
    error = body.get("error")
    if not parts and isinstance(error, str):
        parts.append(error)
    elif not parts and isinstance(error, dict) and isinstance(error.get("message"), str):
        parts.append(error["message"])
    return "; ".join(parts)[:MAX_MESSAGE_CHARS]


def _json_body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError("the service answered with something that is not JSON") from None
    return body if isinstance(body, dict) else {"items": body}


def paginate(
    fetch: Callable[[str | None], tuple[list[dict[str, Any]], str | None]],
    *,
    limit: int,
    max_pages: int = MAX_PAGES,
) -> list[dict[str, Any]]:
    """Up to `limit` items from a cursor-paginated read.

    `fetch(cursor)` returns one page and the cursor of the next (None at the end); the
    first call gets None.
    """
    return list(_items(fetch, limit=limit, max_pages=max_pages))


def _items(
    fetch: Callable[[str | None], tuple[list[dict[str, Any]], str | None]],
    *,
    limit: int,
    max_pages: int,
) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    seen = 0
    for _ in range(max_pages):
        page, cursor = fetch(cursor)
        for item in page:
            if seen >= limit:
                return
            seen += 1
            yield item
        if cursor is None or seen >= limit:
            return


def new_http_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """The HTTP client a connector keeps for its process (pooled connections)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": "chatops-agent", "Accept": "application/json"},
        follow_redirects=False,
    )
