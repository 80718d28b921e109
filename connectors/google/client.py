"""A tenant's Google API client (Calendar, Gmail), from its stored OAuth credential.

A tenant connects a Google service with an OAuth client and a refresh token that a
person of theirs granted it (the "authorized user" form google-auth reads). The token
URI is always ours (settings), never one stored with the credential, so a credential can
only ever be sent to Google's token endpoint. Access tokens are minted by google-auth's
user credentials for each session and never leave this module.

Every call goes through `GoogleClient.execute`: the client library's own retries are
off (num_retries=0, which ignores Retry-After); ours wait out a 429 (or Google's
rateLimitExceeded 403) for as long as Retry-After asks, up to a ceiling, and back off on
5xx and dropped connections when repeating the call cannot do anything twice. Whatever
still fails is a `ConnectorError` in words the agent can relay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httplib2  # no stubs shipped
import structlog
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp  # type: ignore[import-untyped]  # no stubs shipped
from googleapiclient.errors import HttpError

from connectors.credentials import Credential, CredentialStore
from connectors.rest import ConnectorError, RetryPolicy, retry_after_seconds

log = structlog.get_logger(__name__)

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
MAX_MESSAGE_CHARS = 300  # of Google's error message passed on to people


def google_credential(client_id: str, client_secret: str, refresh_token: str) -> Credential:
    """What `/agent connect google_calendar|gmail` stores: google-auth's authorized-user info."""
    info = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
    return Credential(token=json.dumps(info))


@dataclass(frozen=True)
class GoogleService:
    name: str  # as `/agent connect` spells it: "google_calendar"
    title: str  # as people know it: "Google Calendar"
    # The googleapiclient resource, built once per process without credentials: each
    # call is executed with the tenant's authorized HTTP instead.
    resource: Any


@dataclass(frozen=True)
class GoogleClient:
    """One Google service, called with one tenant's credentials."""

    service: GoogleService
    http: AuthorizedHttp = field(repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    @property
    def resource(self) -> Any:
        return self.service.resource

    def execute(
        self, request: Any, *, idempotent: bool = True, not_found: str = "not found"
    ) -> dict[str, Any]:
        """The response of a googleapiclient `HttpRequest`; raises ConnectorError.

        `not_found` is what a 404 means for this call ("no such calendar").
        """
        title = self.service.title
        attempt = 0
        while True:
            try:
                response = request.execute(http=self.http, num_retries=0)
                return response if isinstance(response, dict) else {}
            except HttpError as exc:
                status = int(exc.resp.status)
                reason = _reason(exc)
                if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
                    wait = retry_after_seconds(exc.resp.get("retry-after"))
                    wait = self.retry.delay(attempt) if wait is None else wait
                    if wait > self.retry.max_retry_after or attempt >= self.retry.max_retries:
                        raise ConnectorError(
                            f"{title} is rate limiting us; try again in {round(wait)} seconds",
                            status=429,
                            transient=True,
                        ) from None
                    self._wait(wait, request, "429")
                elif status >= 500 and idempotent and attempt < self.retry.max_retries:
                    self._wait(self.retry.delay(attempt), request, str(status))
                else:
                    raise self._error(status, reason, _message(exc), not_found) from None
            except RefreshError as exc:
                log.info("connector.refresh_failed", service=self.service.name)
                if getattr(exc, "retryable", False):
                    raise ConnectorError(
                        f"Google's sign-in service had a problem; try {title} again later",
                        transient=True,
                    ) from None
                raise ConnectorError(self._reconnect(), status=401) from None
            except (TransportError, httplib2.HttpLib2Error, OSError) as exc:
                # TimeoutError and refused connections are OSErrors.
                if idempotent and attempt < self.retry.max_retries:
                    self._wait(self.retry.delay(attempt), request, type(exc).__name__)
                else:
                    raise ConnectorError(
                        f"{title} could not be reached ({type(exc).__name__}); try again later",
                        transient=True,
                    ) from None
            attempt += 1

    def _wait(self, seconds: float, request: Any, reason: str) -> None:
        # The method id (calendar.events.list), never the URL: it holds email addresses.
        log.info(
            "connector.retry",
            service=self.service.name,
            method=getattr(request, "methodId", None),
            reason=reason,
            wait_seconds=round(seconds, 2),
        )
        self.sleep(seconds)

    def _error(self, status: int, reason: str, detail: str, not_found: str) -> ConnectorError:
        title = self.service.title
        log.info("connector.error", service=self.service.name, status=status, reason=reason)
        if status == 401:
            message = self._reconnect()
        elif status == 403:
            message = f"{title} refused: the connected account is not allowed to do this" + (
                f" ({detail})" if detail else ""
            )
        elif status == 404:
            message = f"{title}: {not_found}"
        elif status == 409:
            message = f"{title}: it already exists"
        elif status >= 500:
            message = f"{title} had a problem (HTTP {status}); try again later"
        else:
            message = f"{title} refused the request: {detail or f'HTTP {status}'}"
        return ConnectorError(message, status=status, transient=status >= 500)

    def _reconnect(self) -> str:
        return (
            f"{self.service.title} no longer accepts the connected account (its access "
            f"expired or was revoked): ask an admin to reconnect {self.service.title} with "
            f"`/agent connect {self.service.name}`"
        )


GoogleSession = Callable[[int], GoogleClient]


def google_session(
    service: GoogleService,
    store: CredentialStore,
    *,
    token_url: str,
    timeout: float,
    retry: RetryPolicy,
) -> GoogleSession:
    def client(tenant_id: int) -> GoogleClient:
        stored = store.load(tenant_id, service.name)
        if stored is None:
            raise ConnectorError(
                f"{service.title} is not connected for this workspace: an admin can run "
                f"`/agent connect {service.name}` to set it up"
            )
        credentials = _user_credentials(stored, token_url, service)
        # A 401 gets one fresh access token and one more try; a second 401 means the
        # account lost access, which no further refresh mends.
        http = AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=timeout), max_refresh_attempts=1
        )
        return GoogleClient(service, http, retry)

    return client


def _user_credentials(stored: Credential, token_url: str, service: GoogleService) -> Credentials:
    try:
        info = json.loads(stored.token)
        client_id, secret = str(info["client_id"]), str(info["client_secret"])
        refresh_token = str(info["refresh_token"])
    except (ValueError, KeyError, TypeError):
        raise ConnectorError(
            f"The stored {service.title} credential is not usable: ask an admin to run "
            f"`/agent connect {service.name}` again"
        ) from None
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,  # minted on the first call
        refresh_token=refresh_token,
        token_uri=token_url,
        client_id=client_id,
        client_secret=secret,
    )


def _reason(exc: HttpError) -> str:
    try:
        errors = json.loads(exc.content).get("error", {}).get("errors") or []
        return str(errors[0].get("reason", "")) if errors else ""
    except (ValueError, AttributeError, TypeError):
        return ""


def _message(exc: HttpError) -> str:
    try:
        message = json.loads(exc.content).get("error", {}).get("message", "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return str(message)[:MAX_MESSAGE_CHARS]
