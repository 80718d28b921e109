"""The Google connectors' tools (Calendar, Gmail), built once per worker process."""

from __future__ import annotations

import httplib2  # no stubs shipped

from connectors.credentials import CredentialStore
from connectors.google.calendar import calendar_service
from connectors.google.calendar_tools import calendar_tools
from connectors.google.client import GoogleService, GoogleSession, google_session
from connectors.google.gmail import gmail_read_service
from connectors.google.gmail_tools import gmail_tools
from connectors.rest import RetryPolicy
from core.settings import Settings
from core.tools import Tool, needing


def google_tools(settings: Settings, store: CredentialStore, retry: RetryPolicy) -> list[Tool]:
    # Only used to build the resources from the bundled discovery documents (no network):
    # each call runs on the tenant's own authorized HTTP.
    unauthenticated = httplib2.Http(timeout=settings.connector_timeout_seconds)

    def session(service: GoogleService) -> GoogleSession:
        return google_session(
            service,
            store,
            token_url=settings.google_oauth_token_url,
            timeout=settings.connector_timeout_seconds,
            retry=retry,
        )

    calendar = calendar_service(settings.google_calendar_api_url, unauthenticated)
    gmail = gmail_read_service(settings.gmail_api_url, unauthenticated)
    return [
        *needing("google_calendar", calendar_tools(session(calendar))),
        *needing("gmail", gmail_tools(session(gmail))),
    ]
