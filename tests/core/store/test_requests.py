"""A request's status moves only the ways core/store/requests.py allows: what an asker or
an admin would notice if it did not (an answer queued again, a failure without its
reason, a held email that cannot be released)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from core.store import requests

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def tenant(db: DB) -> int:
    row = db.execute(
        "INSERT INTO tenants (name) VALUES ('requests store test') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row["id"])


def stored(db: DB, tenant: int) -> int:
    request_id = requests.add(
        db, requests.NewRequest(tenant, "slack", f"test-{uuid.uuid4().hex}", "app_mention", {})
    )
    assert request_id is not None
    return request_id


def with_status(db: DB, tenant: int, status: str) -> int:
    """A request already at ``status``, as the tests of the sweep build them."""
    request_id = stored(db, tenant)
    db.execute(
        "UPDATE inbound_requests SET status = %s WHERE id = %s",
        (status, request_id),
    )
    return request_id


def row(db: DB, request_id: int) -> dict[str, Any]:
    found = db.execute(
        "SELECT status, error, finished_at, requeued FROM inbound_requests WHERE id = %s",
        (request_id,),
    ).fetchone()
    assert found is not None
    return found


def test_a_request_is_stored_once_per_external_id(db: DB, tenant: int) -> None:
    external_id = f"test-{uuid.uuid4().hex}"
    request = requests.NewRequest(tenant, "slack", external_id, "app_mention", {})
    first = requests.add(db, request)
    again = requests.add(db, request)
    assert first is not None
    assert again is None
    assert row(db, first)["status"] == "received"


def test_a_finished_request_is_never_swept_into_the_queue_again(db: DB, tenant: int) -> None:
    ids = {status: with_status(db, tenant, status) for status in requests.TRANSITIONS}
    db.execute(
        "UPDATE inbound_requests SET received_at = now() - interval '1 hour',"
        " queued_at = now() - interval '1 hour' WHERE id = ANY(%s)",
        (list(ids.values()),),
    )

    swept = requests.stranded(
        db, after=timedelta(minutes=1), after_queued=timedelta(minutes=1), batch=10_000
    )
    found = {r["id"]: r["status"] for r in swept if r["id"] in ids.values()}
    assert sorted(found.values()) == ["queued", "received", "running"]

    for status, request_id in ids.items():
        requeued = requests.mark_requeued(db, request_id)
        assert requeued == (status in requests.OPEN)
        after = row(db, request_id)
        if status in requests.FINISHED:
            assert after["status"] == status
            assert after["requeued"] == 0
        else:
            assert after["status"] == "queued"
            assert after["requeued"] == 1


def test_a_failed_request_keeps_the_reason_it_failed_for(db: DB, tenant: int) -> None:
    request_id = with_status(db, tenant, "running")

    assert requests.fail(db, request_id, "Slack refused the reply: channel_not_found") == tenant

    failed = row(db, request_id)
    assert failed["status"] == "failed"
    assert failed["error"] == "Slack refused the reply: channel_not_found"
    assert failed["finished_at"] is not None
    # Nothing later overwrites the outcome or its reason.
    assert requests.fail(db, request_id, "a second reason") is None
    assert not requests.finish(db, request_id, "done")
    assert not requests.mark_running(db, tenant, request_id)
    assert row(db, request_id)["error"] == "Slack refused the reply: channel_not_found"


def test_an_answered_request_is_not_answered_again(db: DB, tenant: int) -> None:
    request_id = stored(db, tenant)
    assert requests.mark_running(db, tenant, request_id)
    assert requests.finish(db, request_id, "done", tenant_id=tenant)

    assert not requests.mark_running(db, tenant, request_id)
    assert not requests.finish(db, request_id, "ignored", "late")
    assert not requests.mark_requeued(db, request_id)
    assert requests.mark_released(db, tenant, [request_id]) == 0
    assert row(db, request_id)["status"] == "done"


def test_an_answered_request_may_still_be_recorded_failed(db: DB, tenant: int) -> None:
    """Slack refusing for good what follows the answer (running what a rule allowed)
    records the request failed, where an admin sees it."""
    request_id = with_status(db, tenant, "done")

    assert requests.fail(db, request_id, "Slack refused the reply: not_in_channel") == tenant
    assert row(db, request_id)["status"] == "failed"


def test_a_released_email_is_queued_again_without_its_hold(db: DB, tenant: int) -> None:
    held = stored(db, tenant)
    assert requests.finish(db, held, "ignored", "held in the inbox's digest")
    assert row(db, held)["error"] == "held in the inbox's digest"

    assert requests.mark_released(db, tenant, [held]) == 1

    released = row(db, held)
    assert released["status"] == "queued"
    assert released["error"] is None
    assert released["finished_at"] is None


def test_a_request_is_released_only_in_its_own_tenant(db: DB, tenant: int) -> None:
    held = with_status(db, tenant, "ignored")
    other = db.execute("INSERT INTO tenants (name) VALUES ('other') RETURNING id").fetchone()
    assert other is not None

    assert requests.mark_released(db, other["id"], [held]) == 0
    assert row(db, held)["status"] == "ignored"


def test_the_transitions_keep_finished_requests_finished() -> None:
    assert set(requests.TRANSITIONS) == requests.OPEN | requests.FINISHED
    # Only a held email's release reopens a finished request, and never an answered one.
    assert set(requests.may_become("queued")) == requests.OPEN | {"ignored", "failed"}
    assert set(requests.may_become("running")) == requests.OPEN
    assert set(requests.may_become("done")) == requests.OPEN
    assert requests.TRANSITIONS["failed"] == frozenset({"queued"})
    assert requests.TRANSITIONS["done"] == frozenset({"failed"})
    assert all(requests.is_finished(status) for status in requests.FINISHED)
    assert not any(requests.is_finished(status) for status in requests.OPEN)
