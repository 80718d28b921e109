"""The Zendesk emulator and a tenant connected to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from core.db import Pool
from sandbox.zendesk_api import ZendeskEmulator
from tests.connectors.workspace import Workspace, make_workspace, pool

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

TOKEN = "zd-api-token-6f1d2c3b4a59"
EMAIL = "agent@acme.example"


@pytest.fixture(scope="module")
def zendesk() -> Iterator[ZendeskEmulator]:
    with ZendeskEmulator(token=TOKEN, email=EMAIL) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def new_workspace(
    zendesk: ZendeskEmulator, pool: Pool, database_url: str
) -> Iterator[Callable[[], Workspace]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield make_workspace(conn, pool, database_url, zendesk_api_url=zendesk.api_url)


@pytest.fixture
def workspace(new_workspace: Callable[[], Workspace], zendesk: ZendeskEmulator) -> Workspace:
    """A new tenant that has connected Zendesk with an API token for the emulator."""
    zendesk.reset()
    space = new_workspace()
    space.connect("zendesk", f"{EMAIL}/token:{TOKEN}", account="acme")
    return space
