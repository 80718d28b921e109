"""Concurrent SMTP sessions' messages are committed together, and each 250 still comes
only after its message's commit."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import dict_row

from testbed.markers import new_marker
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail, send
from tests.connectors.email.support import DB, RunningListener, Tenant

pytest_plugins = ["tests.connectors.email.fixtures"]

SESSIONS = 6
POISON = "<poison-for-the-group-commit-test@customer.example>"


def message_ids(prefix: str) -> list[str]:
    """One Message-ID per session, unique to this run."""
    return [f"<{prefix}-{i}-{new_marker(6)}@customer.example>" for i in range(SESSIONS)]


def send_all(port: int, tenant: Tenant, ids: list[str]) -> list[dict[str, object]]:
    """One SMTP session per Message-ID, all at once; what each sendmail returned."""
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        return list(
            pool.map(lambda i: send(port, [tenant.inbox], mail(tenant.inbox, message_id=i)), ids)
        )


@pytest.fixture
def tenant_row_locked(
    email_database_url: str, email_tenant: Tenant
) -> Iterator[tuple[Tenant, threading.Event]]:
    """The tenant's row locked FOR UPDATE by another transaction until the event is set:
    storing anything for the tenant (its rows reference it) waits for the lock."""
    release, locked = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(email_database_url) as conn:
            conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR UPDATE", (email_tenant.id,))
            locked.set()
            release.wait(30)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield email_tenant, release
    finally:
        release.set()
        holder.join(10)


def test_no_250_before_the_commit_and_waiting_messages_commit_together(
    smtp_listener: RunningListener,
    email_db: DB,
    tenant_row_locked: tuple[Tenant, threading.Event],
) -> None:
    """While Postgres cannot commit, no session hears 250 and nothing is visible; once it
    can, every message is stored, those that waited in one transaction, and all get 250."""
    tenant, release = tenant_row_locked
    ids = message_ids("order")
    with ThreadPoolExecutor(max_workers=1) as runner:
        sending = runner.submit(send_all, smtp_listener.port, tenant, ids)
        time.sleep(1.0)  # every session has reached the end of DATA and waits
        assert not sending.done(), "a session was answered before its message was stored"
        stored = email_db.execute(
            "SELECT count(*) AS n FROM inbound_requests WHERE tenant_id = %s", (tenant.id,)
        ).fetchone()
        assert stored is not None and stored["n"] == 0
        release.set()
        refused = sending.result(timeout=20)
    assert refused == [{}] * SESSIONS  # sendmail returns the refused recipients: none
    rows = email_db.execute(
        """SELECT r.external_id, r.xmin::text AS tx
             FROM inbound_requests r WHERE r.tenant_id = %s""",
        (tenant.id,),
    ).fetchall()
    assert sorted(r["external_id"] for r in rows) == sorted(ids)
    # The first message to reach Postgres waited for the lock on its own; the others
    # queued meanwhile and went in together, in one transaction (one xmin).
    assert len({r["tx"] for r in rows}) <= 2


@pytest.fixture
def poison_trigger(email_database_url: str) -> Iterator[None]:
    """Postgres refuses to store the message with the poison Message-ID, as it would a
    value it cannot take."""
    with psycopg.connect(email_database_url, autocommit=True) as conn:
        conn.execute(
            f"""CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.message_id = '{POISON}' THEN RAISE EXCEPTION 'refused'; END IF;
                  RETURN NEW;
                END $$"""
        )
        conn.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON email_messages"
            " FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )
    try:
        yield
    finally:
        with psycopg.connect(email_database_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse_poison ON email_messages")
            conn.execute("DROP FUNCTION refuse_poison()")


def test_a_message_postgres_refuses_costs_the_others_in_its_group_nothing(
    smtp_listener: RunningListener,
    email_database_url: str,
    tenant_row_locked: tuple[Tenant, threading.Event],
    poison_trigger: None,
) -> None:
    """The refused message is answered 451 (its sender retries) and stores nothing; the
    messages committed in the same group as it are stored and answered 250."""
    tenant, release = tenant_row_locked
    ids = [*message_ids("fine")[1:], POISON]
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        sending = [pool.submit(deliver, smtp_listener.port, tenant, i) for i in ids]
        time.sleep(1.0)  # all of them wait at the end of DATA, to be committed together
        release.set()
        outcomes = dict(f.result(timeout=30) for f in sending)
    assert outcomes.pop(POISON) == 451
    assert set(outcomes.values()) == {250}
    with psycopg.connect(email_database_url, row_factory=dict_row) as conn:
        stored = conn.execute(
            "SELECT external_id FROM inbound_requests WHERE tenant_id = %s", (tenant.id,)
        ).fetchall()
    assert sorted(r["external_id"] for r in stored) == sorted(outcomes)


def deliver(port: int, tenant: Tenant, message_id: str) -> tuple[str, int]:
    """One message in its own session: its Message-ID and the code that answered its DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        try:
            client.sendmail(CUSTOMER, [tenant.inbox], mail(tenant.inbox, message_id=message_id))
        except smtplib.SMTPDataError as exc:
            return message_id, exc.smtp_code
    return message_id, 250


def test_a_commit_that_fails_answers_4xx_to_every_session_waiting_on_it(
    smtp_listener: RunningListener,
    email_database_url: str,
    tenant_row_locked: tuple[Tenant, threading.Event],
) -> None:
    """Postgres ends the committer's session while the group waits to commit (as a
    restart would): every session in it is answered 451, none 250, and nothing of
    theirs is stored, so each sender's retry is the only copy."""
    tenant, release = tenant_row_locked
    ids = message_ids("lost")
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        sending = [pool.submit(deliver, smtp_listener.port, tenant, i) for i in ids]
        time.sleep(1.0)  # all of them wait at the end of DATA, behind the tenant's lock
        deadline = time.monotonic() + 30
        while not all(f.done() for f in sending) and time.monotonic() < deadline:
            end_sessions_waiting_for_the_lock(email_database_url)
            time.sleep(0.2)
        outcomes = dict(f.result(timeout=5) for f in sending)
    release.set()
    assert outcomes == {i: 451 for i in ids}
    with psycopg.connect(email_database_url, row_factory=dict_row) as conn:
        stored = conn.execute(
            "SELECT count(*) AS n FROM inbound_requests WHERE tenant_id = %s", (tenant.id,)
        ).fetchone()
    assert stored is not None and stored["n"] == 0


def end_sessions_waiting_for_the_lock(database_url: str) -> None:
    """Terminate every backend of this database waiting for a lock: the committer's."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        )
