"""The stranded-request sweep queues again only requests whose job the broker lost: a
request still waiting in the queue (a backlog) is left alone, so nothing piles up twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from psycopg.types.json import Jsonb

from bot.queue.census import queued_jobs
from bot.queue.jobs import enqueue_request
from bot.queue.stranded import requeue_stranded
from testbed.redis_keys import own_broker

DB = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def broker(redis_url: str) -> Iterator[RedisBroker]:
    """A broker under a namespace of its own, with no worker consuming it."""
    with own_broker(redis_url, "chatops-test-stranded") as built:
        yield built


@pytest.fixture
def tenant(db: DB) -> int:
    row = db.execute(
        "INSERT INTO tenants (name) VALUES ('stranded sweep test') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row["id"])


def open_request(db: DB, tenant: int, status: str) -> int:
    """A request last queued two seconds ago: too recent for the session's own workers'
    sweep (60 s), old enough for this test's (1 s)."""
    row = db.execute(
        """INSERT INTO inbound_requests
             (tenant_id, source, external_id, kind, payload, status, received_at, queued_at)
           VALUES (%s, 'slack', %s, 'app_mention', %s, %s,
                   now() - interval '2 seconds', now() - interval '2 seconds')
           RETURNING id""",
        (tenant, f"test-{uuid.uuid4().hex}", Jsonb({}), status),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def test_only_requests_without_a_job_are_queued_again(
    db: DB, broker: RedisBroker, tenant: int
) -> None:
    """Of two requests queued a while ago, the one whose job is still in the queue is left
    alone; the one whose job is gone (and a 'running' one, too) gets a new job."""
    waiting = open_request(db, tenant, "queued")
    enqueue_request(broker, waiting, "app_mention", None)
    lost = open_request(db, tenant, "queued")
    abandoned = open_request(db, tenant, "running")
    try:
        requeued = requeue_stranded(db, broker, after=timedelta(seconds=1))

        census = queued_jobs(broker)
        assert census is not None
        assert {waiting, lost, abandoned} <= census.requests
        rows = {
            r["id"]: r["requeued"]
            for r in db.execute(
                "SELECT id, requeued FROM inbound_requests WHERE id = ANY(%s)",
                ([waiting, lost, abandoned],),
            )
        }
        assert rows == {waiting: 0, lost: 1, abandoned: 1}
        assert requeued >= 2
        # Queued again just now, so the next sweep leaves them alone.
        requeue_stranded(db, broker, after=timedelta(seconds=1))
        again = db.execute(
            "SELECT id, requeued FROM inbound_requests WHERE id = ANY(%s)",
            ([waiting, lost, abandoned],),
        ).fetchall()
        assert {r["id"]: r["requeued"] for r in again} == rows
    finally:
        db.execute(
            "UPDATE inbound_requests SET status = 'done' WHERE id = ANY(%s)",
            ([waiting, lost, abandoned],),
        )


def test_a_broker_that_cannot_be_read_gives_no_census() -> None:
    """RabbitMQ's queues cannot be read without taking the messages: the sweep is told so."""
    assert queued_jobs(StubBroker()) is None  # type: ignore[no-untyped-call]
