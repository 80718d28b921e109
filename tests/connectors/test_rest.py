"""The connectors' REST client: what it retries, how long it waits, and how it explains
failures, against the HubSpot emulator over real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from connectors.rest import (
    ConnectorError,
    RestClient,
    RetryPolicy,
    api_message,
    new_http_client,
    paginate,
    retry_after_seconds,
)
from sandbox.hubspot_api import HubSpotEmulator

TOKEN = "pat-na1-rest-client-test"


@pytest.fixture(scope="module")
def emulator() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as running:
        yield running


@pytest.fixture
def hubspot(emulator: HubSpotEmulator) -> HubSpotEmulator:
    emulator.reset()
    return emulator


def _client(base_url: str, waits: list[float], **retry: Any) -> RestClient:
    return RestClient(
        http=new_http_client(timeout=2),
        service="HubSpot",
        connector="hubspot",
        base_url=base_url,
        auth_headers={"Authorization": f"Bearer {TOKEN}"},
        retry=RetryPolicy(**retry),
        sleep=waits.append,
    )


def test_a_429_is_waited_out_for_its_retry_after(hubspot: HubSpotEmulator) -> None:
    """The client sleeps exactly what Retry-After asks, then repeats the call."""
    contact = hubspot.crm.add("contacts", {"firstname": "Ann"})
    hubspot.fail_next(429, retry_after=2)
    waits: list[float] = []

    found = _client(hubspot.api_url, waits).get(f"/crm/v3/objects/contacts/{contact.id}")

    assert found["id"] == contact.id
    assert waits == [2.0]


def test_a_429_is_waited_out_even_for_a_write(hubspot: HubSpotEmulator) -> None:
    """A rate-limited write was not carried out, so it is sent again after the wait."""
    contact = hubspot.crm.add("contacts", {"firstname": "Bo"})
    hubspot.fail_next(429, retry_after=1)
    waits: list[float] = []

    _client(hubspot.api_url, waits).request(
        "PATCH",
        f"/crm/v3/objects/contacts/{contact.id}",
        json={"properties": {"lastname": "Lee"}},
        idempotent=False,
    )

    assert waits == [1.0]
    assert hubspot.crm.get("contacts", contact.id).properties["lastname"] == "Lee"


def test_a_429_asking_too_long_fails_at_once(hubspot: HubSpotEmulator) -> None:
    """A Retry-After beyond the ceiling is not slept through: the caller is told to wait."""
    hubspot.fail_next(429, retry_after=120)
    waits: list[float] = []

    with pytest.raises(ConnectorError) as raised:
        _client(hubspot.api_url, waits, max_retry_after=30).get("/crm/v3/objects/contacts/1")

    assert raised.value.message == "HubSpot is rate limiting us; try again in 120 seconds"
    assert raised.value.transient and waits == []


def test_server_errors_on_reads_are_retried_with_exponential_backoff(
    hubspot: HubSpotEmulator,
) -> None:
    """Two 503s on a read are retried after 0.5 s then 1 s, and the third call succeeds."""
    contact = hubspot.crm.add("contacts", {"firstname": "Cy"})
    hubspot.fail_next(503)
    hubspot.fail_next(503)
    waits: list[float] = []

    found = _client(hubspot.api_url, waits).get(f"/crm/v3/objects/contacts/{contact.id}")

    assert found["id"] == contact.id
    assert waits == [0.5, 1.0]


def test_a_server_error_on_a_write_is_not_retried(hubspot: HubSpotEmulator) -> None:
    """A write that may have happened is never repeated by the client."""
    hubspot.fail_next(503, after_commit=True)
    waits: list[float] = []

    with pytest.raises(ConnectorError) as raised:
        _client(hubspot.api_url, waits).request(
            "POST",
            "/crm/v3/objects/companies",
            json={"properties": {"name": "Once Inc"}},
            idempotent=False,
        )

    assert raised.value.transient and raised.value.status == 503
    assert raised.value.message == "HubSpot had a problem (HTTP 503); try again later"
    assert waits == [] and len(hubspot.requests) == 1
    assert [c.properties["name"] for c in hubspot.crm.all("companies")].count("Once Inc") == 1


def test_retries_run_out(hubspot: HubSpotEmulator) -> None:
    """A read that keeps failing gives up after the configured retries."""
    for _ in range(3):
        hubspot.fail_next(502)
    waits: list[float] = []

    with pytest.raises(ConnectorError) as raised:
        _client(hubspot.api_url, waits, max_retries=2).get("/crm/v3/objects/contacts/1")

    assert raised.value.status == 502 and len(hubspot.requests) == 3


def test_an_unreachable_service_is_a_transient_error() -> None:
    """A refused connection is retried for reads, then reported in words."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    waits: list[float] = []

    with pytest.raises(ConnectorError) as raised:
        _client(f"http://127.0.0.1:{port}", waits, max_retries=1).get("/anything")

    assert raised.value.message == "HubSpot could not be reached (ConnectError); try again later"
    assert raised.value.transient and waits == [0.5]


def test_links_to_another_host_are_refused(hubspot: HubSpotEmulator) -> None:
    """A next-page link naming another host is not followed with our credentials."""
    with pytest.raises(ConnectorError, match="another host"):
        _client(hubspot.api_url, []).get("http://evil.example/api/v2/search.json?page=2")
    assert hubspot.requests == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After may be a number of seconds or an HTTP date."""
    later = datetime.now(UTC) + timedelta(seconds=90)
    assert retry_after_seconds("7") == 7.0
    assert 85 <= (retry_after_seconds(format_datetime(later, usegmt=True)) or 0) <= 90
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_api_messages_are_read_from_the_usual_error_shapes() -> None:
    """HubSpot's `message` and Zendesk's `description` with `details` become one line."""
    hubspot = httpx.Response(400, json={"status": "error", "message": "Property x is invalid"})
    zendesk = httpx.Response(
        422,
        json={
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
        },
    )
    bare = httpx.Response(401, json={"error": "Couldn't authenticate you"})
    assert api_message(hubspot) == "Property x is invalid"
    assert api_message(zendesk) == "Record validation errors; Status: closed prevents ticket update"
    assert api_message(bare) == "Couldn't authenticate you"
    assert api_message(httpx.Response(500, text="<html>oops</html>")) == ""


def test_paginate_stops_at_the_limit_and_at_the_last_page() -> None:
    """Cursor pages are followed until enough items or no next cursor."""
    pages = {
        None: ([{"n": 1}, {"n": 2}], "b"),
        "b": ([{"n": 3}, {"n": 4}], "c"),
        "c": ([{"n": 5}], None),
    }
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        asked.append(cursor)
        return pages[cursor]

    assert [i["n"] for i in paginate(fetch, limit=3)] == [1, 2, 3]
    assert asked == [None, "b"]
    assert [i["n"] for i in paginate(fetch, limit=50)] == [1, 2, 3, 4, 5]
