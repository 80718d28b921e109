"""One client cannot bury the approvers: beyond a few drafts per sender (and per inbox)
an hour, new email requests are listed on one digest card instead of a card each."""

from __future__ import annotations

import json
import smtplib
import threading
import uuid
from email import policy
from email.message import EmailMessage

from psycopg.types.json import Jsonb

from connectors.email.flood_gate import FloodLimits, admit
from core.db import open_pool
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.security.conftest import APPROVALS, DB
from tests.support.conversation import PLAN
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack

PER_SENDER = FloodLimits().per_sender  # the worker runs with the defaults


def test_a_flooding_sender_gets_a_few_cards_then_one_digest(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    """Nine emails from one sender in a row: the first five get a drafted reply and an
    approval card each; the other four are not drafted (no model call) and appear on a
    single digest card, with the sender partly masked."""
    inbox, port, _ = email_inbox
    sender = f"flood-{new_marker(6)}@noisy.example"
    markers = [new_marker(8) for _ in range(PER_SENDER + 4)]
    for marker in markers:
        llm.script(
            Reply(content=PLAN),
            Reply(content={"answer": f"Noted ({marker}).", "citations": []}),
            match=marker,
        )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for marker in markers:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = inbox
            message["Subject"] = f"Ticket {marker}"
            message["Message-ID"] = f"<{marker}@noisy.example>"
            message.set_content(f"Please answer ({marker})")
            client.sendmail(sender, [inbox], message.as_bytes(policy=policy.SMTP))

    finished = wait_for(
        lambda: (
            (
                rows := db.execute(
                    """SELECT external_id, status, error FROM inbound_requests
                    WHERE source = 'email' AND external_id = ANY(%s)
                      AND status IN ('done', 'ignored', 'failed')""",
                    ([f"<{m}@noisy.example>" for m in markers],),
                ).fetchall()
            )
            and len(rows) == len(markers)
            and rows
        ),
        timeout=120,
        message="every request to be finished",
    )
    held = [r for r in finished if r["status"] == "ignored"]
    assert len(held) == 4 and len(finished) - len(held) == PER_SENDER
    assert all("more than 5 emails from this sender" in r["error"] for r in held)
    cards = db.execute(
        """SELECT count(*) AS n FROM pending_actions WHERE tool = 'reply_email'
           AND approval_ts IS NOT NULL AND summary LIKE '%%Ticket %%'
           AND payload->>'text' LIKE ANY(%s)""",
        ([f"%({m})%" for m in markers],),
    ).fetchone()
    assert cards == {"n": PER_SENDER}
    held_markers = [r["external_id"].strip("<>").split("@")[0] for r in held]
    for marker in held_markers:
        assert llm.requests(match=marker) == []

    digest = db.execute(
        """SELECT d.approval_channel_id, d.approval_ts FROM email_digests d
           JOIN email_intake_gate g ON g.digest_id = d.id
           WHERE g.sender = %s GROUP BY d.id""",
        (sender,),
    ).fetchall()
    assert len(digest) == 1 and digest[0]["approval_channel_id"] == APPROVALS
    card = stack.slack.workspace.message(APPROVALS, digest[0]["approval_ts"])
    shown = json.dumps(card.blocks)
    assert "4 emails to " + inbox in card.text
    assert "f***@noisy.example" in shown and sender not in shown
    assert all(f"Ticket {m}" in shown for m in held_markers)
    digests_posted = [
        m
        for m in stack.slack.history(APPROVALS)
        if (m.metadata or {}).get("event_type") == "chatops_email_digest"
        and m.ts == digest[0]["approval_ts"]
    ]
    assert len(digests_posted) == 1


def test_concurrent_workers_cannot_slip_past_the_inbox_limit(database_url: str, db: DB) -> None:
    """Twenty requests to one inbox judged at once by eight threads, each with its own
    connection, with a limit of five per inbox: exactly five are drafted, the rest share
    one digest."""
    tenant = db.execute("INSERT INTO tenants (name) VALUES ('flood') RETURNING id").fetchone()
    assert tenant is not None
    request_ids = [
        db.execute(
            """INSERT INTO inbound_requests (tenant_id, source, external_id, kind, payload)
               VALUES (%s, 'email', %s, 'email', %s) RETURNING id""",
            (tenant["id"], f"<{uuid.uuid4().hex}@x.example>", Jsonb({})),
        ).fetchone()["id"]  # type: ignore[index]
        for _ in range(20)
    ]
    limits = FloodLimits(per_sender=100, per_inbox=5)
    pool = open_pool(database_url, max_size=8)
    verdicts: dict[int, str] = {}
    lock = threading.Lock()

    def judge(ids: list[int]) -> None:
        for request_id in ids:
            with pool.connection() as conn:
                verdict = admit(
                    conn,
                    tenant_id=tenant["id"],
                    request_id=request_id,
                    inbox="help@flood.example",
                    sender=f"s{request_id}@x.example",
                    subject="hi",
                    limits=limits,
                )
            with lock:
                verdicts[request_id] = verdict.outcome

    threads = [threading.Thread(target=judge, args=(request_ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert sorted(verdicts.values()).count("drafted") == 5
    assert db.execute(
        """SELECT count(DISTINCT digest_id) AS n FROM email_intake_gate
           WHERE tenant_id = %s AND outcome = 'held'""",
        (tenant["id"],),
    ).fetchone() == {"n": 1}
