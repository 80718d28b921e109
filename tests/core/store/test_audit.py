"""The audit log's one writer stores entries as given, in the caller's transaction, and
the review code masks what approvers may not see before it writes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core.store import audit
from review import actions
from testbed.markers import new_marker

DB = psycopg.Connection[dict[str, Any]]

CARD = "4111 1111 1111 1111"


@pytest.fixture
def tenant(db: DB) -> int:
    row = db.execute(
        "INSERT INTO tenants (name) VALUES ('audit store test') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row["id"])


def entries(db: DB, tenant: int, subject: str) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT actor, action, details FROM audit_log WHERE tenant_id = %s AND subject = %s"
        " ORDER BY id",
        (tenant, subject),
    ).fetchall()


def test_entries_are_stored_with_their_details_and_read_back_oldest_first(
    db: DB, tenant: int
) -> None:
    subject = f"action:{uuid.uuid4().int % 10**9}"
    audit.append(
        db,
        audit.Entry(
            tenant_id=tenant,
            actor="U1",
            action="action.decision_ignored",
            subject=subject,
            details={"verb": "approve", "reason": "not an approver"},
        ),
    )
    audit.append(db, audit.Entry(tenant, "U2", "action.decision_ignored", subject))
    audit.append(db, audit.Entry(tenant, "U3", "action.approved", subject))

    ignored = audit.entries_about(db, tenant, subject, "action.decision_ignored")

    assert [(e["actor"], e["details"]) for e in ignored] == [
        ("U1", {"verb": "approve", "reason": "not an approver"}),
        ("U2", {}),  # no details: the column's empty object, as before
    ]


def test_an_entry_is_kept_only_with_what_it_records(db: DB, tenant: int) -> None:
    subject = f"rule:{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), db.transaction():
        audit.append(db, audit.Entry(tenant, "U1", "rule.created", subject))
        raise RuntimeError("what the entry records failed")

    assert entries(db, tenant, subject) == []


def test_the_listeners_write_the_same_entries(database_url: str, db: DB, tenant: int) -> None:
    subject = f"T{new_marker(8)}"

    async def install() -> None:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, row_factory=dict_row
        ) as conn:
            await audit.append_async(conn, audit.Entry(tenant, "U1", "slack.installed", subject))

    asyncio.run(install())

    assert entries(db, tenant, subject) == [
        {"actor": "U1", "action": "slack.installed", "details": {}}
    ]


def test_an_action_entry_is_stored_as_its_approvers_may_see_it(db: DB, tenant: int) -> None:
    action_id = uuid.uuid4().int % 10**9
    action = {"id": action_id, "tenant_id": tenant}

    actions.audit(db, action, "U1", "action.edited", {"after": f"pay with card {CARD}"})

    [entry] = entries(db, tenant, f"action:{action_id}")
    assert entry["action"] == "action.edited"
    assert CARD not in str(entry["details"])
    assert str(entry["details"]["after"]).startswith("pay with card ")
