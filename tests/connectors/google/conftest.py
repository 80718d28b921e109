"""Google's token endpoint, the Calendar and Gmail emulators, and a tenant connected to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from connectors.google.client import google_credential
from core.db import Pool
from sandbox.gmail_api import GmailEmulator
from sandbox.google_calendar_api import CalendarEmulator
from sandbox.google_oauth import GoogleOAuthEmulator, Grant
from testbed.markers import new_marker
from tests.connectors.workspace import Workspace, make_workspace, pool

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

CLIENT_ID = "123456789012-sandbox.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-sandbox-client-secret-0001"  # a local fake
REFRESH_TOKEN = "1//0gSandboxRefreshToken-0001"  # a local fake
ACCESS_TOKEN = "ya29.sandbox-access-token-0001"  # a local fake
OWNER = "agent@acme.example"
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)


@pytest.fixture(scope="module")
def oauth() -> Iterator[GoogleOAuthEmulator]:
    grant = Grant(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)
    with GoogleOAuthEmulator(grant) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def calendar() -> Iterator[CalendarEmulator]:
    with CalendarEmulator(owner=OWNER, access_token=ACCESS_TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gmail() -> Iterator[GmailEmulator]:
    with GmailEmulator(address=OWNER, token=ACCESS_TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def new_workspace(
    oauth: GoogleOAuthEmulator,
    calendar: CalendarEmulator,
    gmail: GmailEmulator,
    pool: Pool,
    database_url: str,
) -> Iterator[Callable[[], Workspace]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield make_workspace(
            conn,
            pool,
            database_url,
            google_calendar_api_url=calendar.api_url,
            gmail_api_url=gmail.api_url,
            google_oauth_token_url=oauth.token_url,
        )


def connect_google(space: Workspace, connector: str, refresh_token: str = REFRESH_TOKEN) -> None:
    space.connect(connector, google_credential(CLIENT_ID, CLIENT_SECRET, refresh_token).token)


@pytest.fixture
def workspace(new_workspace: Callable[[], Workspace], calendar: CalendarEmulator) -> Workspace:
    """A new tenant that has connected Google Calendar and Gmail with the sandbox grant."""
    calendar.reset()
    space = new_workspace()
    connect_google(space, "google_calendar")
    connect_google(space, "gmail")
    return space


def new_address(name: str) -> str:
    return f"{name}.{new_marker(6)}@acme.example"
