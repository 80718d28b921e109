"""Emails held on a flood digest card are not lost: an approver releases them from the
card, and each then gets its drafted reply and approval card. Releasing is authorised like
an approval: someone of another organisation cannot."""

from __future__ import annotations

import json
import smtplib
from email import policy
from email.message import EmailMessage
from typing import Any

from connectors.email.flood_gate import FloodLimits
from review.email_digest import BUTTON_RELEASE
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.security.conftest import APPROVALS, APPROVER, DB
from tests.support.conversation import PLAN
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack

PER_SENDER = FloodLimits().per_sender  # the worker runs with the defaults
HELD = 2


def _send_all(port: int, sender: str, inbox: str, markers: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for marker in markers:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = inbox
            message["Subject"] = f"Question {marker}"
            message["Message-ID"] = f"<{marker}@busy.example>"
            message.set_content(f"Please answer ({marker})")
            client.sendmail(sender, [inbox], message.as_bytes(policy=policy.SMTP))


def _requests(db: DB, markers: list[str]) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT r.id, r.external_id, r.status, g.outcome, g.digest_id
             FROM inbound_requests r JOIN email_intake_gate g ON g.request_id = r.id
            WHERE r.source = 'email' AND r.external_id = ANY(%s) ORDER BY r.id""",
        ([f"<{m}@busy.example>" for m in markers],),
    ).fetchall()


def _cards_for(db: DB, markers: list[str]) -> int:
    row = db.execute(
        """SELECT count(*) AS n FROM pending_actions WHERE tool = 'reply_email'
            AND approval_ts IS NOT NULL AND payload->>'text' LIKE ANY(%s)""",
        ([f"%({m})%" for m in markers],),
    ).fetchone()
    assert row is not None
    return int(row["n"])


def _clicks_done(db: DB, user: str) -> int:
    row = db.execute(
        """SELECT count(*) AS n FROM inbound_requests
            WHERE kind = 'digest_release' AND status = 'done'
              AND payload->'user'->>'id' = %s""",
        (user,),
    ).fetchone()
    assert row is not None
    return int(row["n"])


def test_an_approver_releases_held_emails_into_a_card_each(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    partner: str,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    inbox, port, _ = email_inbox
    sender = f"busy-{new_marker(6)}@busy.example"
    markers = [new_marker(8) for _ in range(PER_SENDER + HELD)]
    for marker in markers:
        llm.script(
            Reply(content=PLAN),
            Reply(content={"answer": f"Answered ({marker}).", "citations": []}),
            match=marker,
        )
    _send_all(port, sender, inbox, markers)
    wait_for(
        lambda: (
            len([r for r in _requests(db, markers) if r["status"] in ("done", "ignored")])
            == len(markers)
        ),
        timeout=120,
        message="every email to be drafted or held",
    )
    held = [r for r in _requests(db, markers) if r["outcome"] == "held"]
    assert len(held) == HELD
    held_markers = [r["external_id"].strip("<>").split("@")[0] for r in held]
    assert _cards_for(db, held_markers) == 0
    digest = db.execute(
        "SELECT approval_channel_id, approval_ts FROM email_digests WHERE id = %s",
        (held[0]["digest_id"],),
    ).fetchone()
    assert digest is not None and digest["approval_channel_id"] == APPROVALS
    card = stack.slack.workspace.message(APPROVALS, digest["approval_ts"])
    assert f"Draft a reply to each ({HELD})" in json.dumps(card.blocks)

    # An admin of another organisation (a Slack Connect channel) cannot release them.
    stack.slack.click_button(partner, APPROVALS, digest["approval_ts"], BUTTON_RELEASE)
    wait_for(lambda: _clicks_done(db, partner) == 1, timeout=30, message="the click handled")
    assert [r["outcome"] for r in _requests(db, held_markers)] == ["held"] * HELD
    refusals = stack.slack.workspace.ephemeral_messages(partner)
    assert any("were not released" in m.text for m in refusals)

    # The tenant's approver can: each email gets its draft and its own card.
    stack.slack.click_button(APPROVER, APPROVALS, digest["approval_ts"], BUTTON_RELEASE)
    wait_for(
        lambda: _cards_for(db, held_markers) == HELD,
        timeout=120,
        message="a card for each released email",
    )
    assert [r["outcome"] for r in _requests(db, held_markers)] == ["released"] * HELD
    wait_for(
        lambda: all(r["status"] == "done" for r in _requests(db, held_markers)),
        timeout=30,
        message="the released requests to be finished",
    )
    card = stack.slack.workspace.message(APPROVALS, digest["approval_ts"])
    shown = json.dumps(card.blocks)
    assert f"<@{APPROVER}> released {HELD} emails" in shown
    assert BUTTON_RELEASE not in shown  # nothing left to release
