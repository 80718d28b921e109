"""The agent inbox runs like a channel: `/agent inbox` gives it a template, its answers
come only from the knowledge meant for people outside the company, and the reply is
drafted as an email."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.agent_template import load_templates
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.review.conftest import DB, REQUESTER
from tests.support.channels import ADMIN
from tests.support.conversation import PLAN
from tests.support.processes import wait_for
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]


def send(port: int, address: str, body: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        message_id = f"<{uuid.uuid4().hex}@customer.example>"
        client.sendmail(CUSTOMER, [address], mail(address, body=body, message_id=message_id))


def model_requests(llm: OpenAIEmulator, marker: str, count: int) -> list[str]:
    """The request bodies the model got for this email, as text."""
    bodies = llm.wait_for_requests(count=count, match=marker, timeout=60)
    return [json.dumps(body) for body in bodies]


def test_only_admins_set_what_an_inbox_answers_with(
    stack: Stack, db: DB, tenant: int, inbox: tuple[str, int]
) -> None:
    """`/agent inbox ADDRESS template=support` is refused to a non-admin; for an admin it
    is stored, audited and shown in `/agent inbox`; an unknown template is refused."""
    address, _ = inbox
    refused = stack.slack.run_slash_command(
        REQUESTER, "C0GENERAL", f"inbox {address} template=support"
    )
    assert refused.response is not None and "Only workspace admins" in refused.response["text"]

    unknown = stack.slack.run_slash_command(ADMIN, "C0GENERAL", f"inbox {address} template=pirate")
    assert unknown.response is not None and "no template `pirate`" in unknown.response["text"]

    chosen = stack.slack.run_slash_command(ADMIN, "C0GENERAL", f"inbox {address} template=support")
    assert chosen.response is not None
    assert (
        f"New emails to {address}: answered with the `support` template" in chosen.response["text"]
    )
    listed = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "inbox").response
    assert (
        listed is not None and f"{address}: answered with the `support` template" in listed["text"]
    )
    assert "`public` (for people outside the company)" in listed["text"]
    audit = db.execute(
        "SELECT actor, subject FROM audit_log WHERE tenant_id = %s AND action = 'inbox.settings'"
        " ORDER BY id DESC LIMIT 1",
        (tenant,),
    ).fetchone()
    assert audit == {"actor": ADMIN, "subject": address}


def test_an_inbox_with_a_template_drafts_email_with_its_prompt(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, inbox: tuple[str, int]
) -> None:
    """An email to an inbox set to the support template is drafted under that template's
    prompt, as a plain-text email, and the run records the template it used."""
    address, port = inbox
    stack.slack.run_slash_command(ADMIN, "C0GENERAL", f"inbox {address} template=support")
    marker = new_marker(8)
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"Hello, ticket {marker} is open. Best regards", "citations": []}),
        match=marker,
    )

    send(port, address, f"Hello, can you check my ticket {marker}?")

    requests = model_requests(llm, marker, count=2)
    support_prompt = load_templates(REPO / "templates")["support"].prompt.text.strip()
    first_line = support_prompt.splitlines()[0]
    assert all(json.dumps(first_line)[1:-1] in body for body in requests)
    assert all("plain-text email" in body for body in requests)
    run = wait_for(
        lambda: db.execute(
            """SELECT r.template_name FROM agent_runs r
                 JOIN inbound_requests q ON q.id = r.request_id
                WHERE q.tenant_id = %s AND q.payload->>'text' LIKE %s""",
            (tenant, f"%{marker}%"),
        ).fetchone(),
        timeout=30,
        message="the email's run",
    )
    assert run == {"template_name": "support"}


@pytest.fixture
def ingested_here(db: DB, tmp_path: Path) -> Iterator[Path]:
    """A folder whose documents the test ingests; they leave the knowledge base after it,
    so later tests' searches never find them."""
    yield tmp_path
    db.execute(
        "DELETE FROM knowledge_documents WHERE source_key LIKE %s", (f"file://{tmp_path}/%",)
    )


def test_customers_get_answers_only_from_knowledge_for_outside_readers(
    stack: Stack,
    llm: OpenAIEmulator,
    tenant: int,
    inbox: tuple[str, int],
    ingested_here: Path,
) -> None:
    """With two documents on the same subject, one internal and one in the `public`
    collection, the model drafting a customer's reply is only shown the public one."""
    address, port = inbox
    marker = new_marker(8)
    internal = ingested_here / "internal" / "discounts.md"
    public = ingested_here / "public" / "returns.md"
    internal.parent.mkdir()
    public.parent.mkdir()
    secret = f"staff-only code ZX{marker}"
    internal.write_text(
        f"# Refund exceptions {marker}\n\nFor refund exceptions {marker}, use the {secret}.\n"
    )
    public.write_text(
        f"# Refunds {marker}\n\nRefunds {marker} are accepted within 30 days of delivery.\n"
    )
    for path, collection in ((internal, "default"), (public, "public")):
        command = ["ingest", str(path.parent), "--tenant", str(tenant), "--collection", collection]
        subprocess.run(
            [sys.executable, "-m", "bot.cli", *command],
            env={**os.environ, **stack.env},
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=300,
        )
    llm.script(
        Reply(content={**PLAN, "search_queries": [f"refunds {marker}"]}),
        Reply(content={"answer": "Refunds are accepted within 30 days.", "citations": ["1"]}),
        match=marker,
    )

    send(port, address, f"How do refunds {marker} work?")

    draft_request = model_requests(llm, marker, count=2)[1]
    assert "accepted within 30 days of delivery" in draft_request
    assert secret not in draft_request
