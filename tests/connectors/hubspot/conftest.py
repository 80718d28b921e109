"""The HubSpot emulator and a tenant connected to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from core.db import Pool
from sandbox.hubspot_api import HubSpotEmulator
from tests.connectors.workspace import Workspace, make_workspace, pool

__all__ = ["pool"]  # the module-scoped pool fixture these tests share

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def new_workspace(
    hubspot: HubSpotEmulator, pool: Pool, database_url: str
) -> Iterator[Callable[[], Workspace]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield make_workspace(conn, pool, database_url, hubspot_api_url=hubspot.api_url)


@pytest.fixture
def workspace(new_workspace: Callable[[], Workspace], hubspot: HubSpotEmulator) -> Workspace:
    """A new tenant that has connected HubSpot with the emulator's token."""
    hubspot.reset()
    space = new_workspace()
    space.connect("hubspot", TOKEN)
    return space
