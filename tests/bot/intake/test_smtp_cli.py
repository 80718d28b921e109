"""`chatops smtp` as an operator runs it: a child process that receives mail and stops cleanly."""

from __future__ import annotations

import smtplib
from typing import Any

import psycopg
import pytest

from connectors.email.inboxes import add_inbox
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import free_port

DB = psycopg.Connection[dict[str, Any]]


def test_chatops_smtp_receives_and_queues_mail(
    database_url: str,
    redis_url: str,
    queue_namespace: str,
    db: DB,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The listener process accepts a message for a tenant inbox, stores and queues it,
    and exits 0 on SIGTERM."""
    row = db.execute("INSERT INTO tenants (name) VALUES ('cli email') RETURNING id").fetchone()
    assert row is not None
    tenant_id = row["id"]
    inbox = f"help@cli-{tenant_id}.example"
    add_inbox(db, tenant_id, inbox)
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": f"{queue_namespace}-email-cli",
        "SLACK_SIGNING_SECRET": "unused",
        "SMTP_PORT": str(port),
        "LOG_LEVEL": "info",
    }
    process = ChatopsProcess(["smtp"], env, tmp_path_factory.mktemp("smtp") / "smtp.log")
    process.start(ready_line="smtp.ready")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.sendmail(CUSTOMER, [inbox], mail(inbox)) == {}

        def queued() -> bool:
            found = db.execute(
                "SELECT status FROM inbound_requests WHERE tenant_id = %s AND source = 'email'",
                (tenant_id,),
            ).fetchone()
            return found is not None and found["status"] == "queued"

        wait_for(queued, timeout=10, message="the email request to be queued")
    finally:
        process.stop()
    assert process.process is not None and process.process.returncode == 0
    assert "smtp.stopped" in process.log_text()
