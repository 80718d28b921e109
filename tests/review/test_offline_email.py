"""Offline (no model configured), an email to the inbox is left for a person: an internal
note in the approval channel, never a reply card that would send "Offline mode: ..." and
internal passages to the customer."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator

import pytest

from connectors.email.inboxes import add_inbox
from sandbox.mail_sink import MailSink
from testbed.markers import new_marker
from tests.bot.agent.test_offline_mode import offline_stack  # noqa: F401 - a fixture
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.review.conftest import APPROVALS, DB
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack, free_port


@pytest.fixture
def offline_inbox(
    offline_stack: Stack,  # noqa: F811 - the imported fixture
    db: DB,
    tenant: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, int]]:
    """`chatops smtp` queueing to the offline worker, for a new inbox of the tenant."""
    address = f"offline-{new_marker(6)}@acme.example"
    add_inbox(db, tenant, address)
    port = free_port()
    listener = ChatopsProcess(
        ["smtp"],
        offline_stack.env | {"SMTP_PORT": str(port)},
        tmp_path_factory.mktemp("offline-smtp") / "smtp.log",
    )
    listener.start(ready_line="smtp.ready")
    try:
        yield address, port
    finally:
        listener.stop()


def test_offline_an_email_becomes_an_internal_note_for_a_person(
    offline_stack: Stack,  # noqa: F811 - the imported fixture
    db: DB,
    offline_inbox: tuple[str, int],
    mail_outbox: MailSink,
) -> None:
    address, port = offline_inbox
    marker = new_marker(8)
    subject = f"Refund for order {marker}"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(
            CUSTOMER,
            [address],
            mail(address, subject=subject, body=f"Hello, I'd like a refund for {marker}."),
        )
    note = wait_for(
        lambda: next(
            (m for m in offline_stack.slack.history(APPROVALS) if marker in m.text and m.bot_id),
            None,
        ),
        timeout=30,
        message="the note in the approval channel",
    )
    shown = json.dumps(note.blocks, ensure_ascii=False) + note.text
    assert "Internal note" in shown
    assert "no reply was drafted and nothing will be sent" in shown
    assert "answer it from the inbox yourself" in shown
    assert f"*Subject:* {subject}" in shown
    assert f"I'd like a refund for {marker}." in shown  # the email, as the customer wrote it
    assert "Offline mode:" not in shown
    assert not [b for b in note.blocks or [] if b["type"] == "actions"]
    assert note.reactions == []
    assert db.execute(
        "SELECT count(*) AS n FROM pending_actions WHERE tool = 'reply_email'"
        " AND payload->>'text' LIKE %s",
        (f"%{marker}%",),
    ).fetchone() == {"n": 0}
    time.sleep(1)
    assert [m for m in mail_outbox.messages() if marker in m.data.decode(errors="replace")] == []
