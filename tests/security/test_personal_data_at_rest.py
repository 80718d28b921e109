"""Card numbers, IBANs, SSNs and API keys are never stored in clear: a mention and an email
carrying them leave no table holding them (every text and JSON column read back), the
agent still answers from the masked text, raw email bytes are sealed, and the audit log
keeps a proposed reply as approvers see it."""

from __future__ import annotations

import json
import smtplib
from email import policy
from email.message import EmailMessage

from psycopg.types.json import Jsonb

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.security.conftest import DB
from tests.support.conversation import (
    PLAN,
    mention,
    script_answer,
    unique_question,
    wait_for_answer,
)
from tests.support.processes import ChatopsProcess, wait_for
from tests.support.stack import Stack

CARD = "4242 4242 4242 4242"  # Luhn-valid, the card networks' test number
IBAN = "GB82 WEST 1234 5698 7654 32"  # the IBAN registry's example
API_KEY = "sk-proj-" + "Zq7Lm2Xc9Vb4Nk8Rt5Wy3Hd6"
SSN = "536-22-8726"
SECRETS = {
    "card": CARD,
    "card digits": CARD.replace(" ", ""),
    "iban": IBAN,
    "iban compact": IBAN.replace(" ", ""),
    "api key": API_KEY,
    "ssn": SSN,
}
CONFESSION = f"My card is {CARD}, my IBAN {IBAN}, my SSN {SSN} and our key {API_KEY}."


def clear_copies(db: DB) -> list[str]:
    """Every text, varchar and JSON column of every table in the database that holds one of
    SECRETS in clear: `table.column: which`."""
    columns = db.execute(
        """SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public'
              AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')
              AND table_name IN (SELECT table_name FROM information_schema.tables
                                  WHERE table_schema = 'public' AND table_type = 'BASE TABLE')"""
    ).fetchall()
    found = []
    for column in columns:
        for name, value in SECRETS.items():
            hit = db.execute(
                f'SELECT 1 FROM "{column["table_name"]}"'
                f' WHERE "{column["column_name"]}"::text LIKE %s LIMIT 1',
                (f"%{value}%",),
            ).fetchone()
            if hit:
                found.append(f"{column['table_name']}.{column['column_name']}: {name}")
    return found


def test_a_mention_with_a_card_iban_ssn_and_key_stores_none_in_clear(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    question = unique_question(f"Please check my refund. {CONFESSION}")
    script_answer(llm, "Please check my refund", "The refund for that card is on its way.")
    asked = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, asked.message.ts)
    assert answer.text == "The refund for that card is on its way."

    stored = db.execute(
        """SELECT payload FROM inbound_requests
            WHERE source = 'slack' AND payload->'event'->>'ts' = %s""",
        (asked.message.ts,),
    ).fetchone()
    assert stored is not None
    text = stored["payload"]["event"]["text"]
    # Masked for good, yet a person (and the agent) can still tell which card it was.
    assert "**** **** **** 4242" in text and "[secret removed]" in text
    assert "***-**-8726" in text
    sent = json.dumps(llm.requests(match="Please check my refund"))
    assert "4242" in sent and CARD not in sent and API_KEY not in sent
    assert clear_copies(db) == []


def _mail(sender: str, to: str, marker: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Jane Roe <{sender}>"
    message["To"] = to
    message["Subject"] = f"Refund to {IBAN} ({marker})"
    message["Message-ID"] = f"<{marker}@customer.example>"
    message.set_content(f"Hello,\n\n{CONFESSION}\nPlease refund order {marker}.\n\nJane Roe")
    return message.as_bytes(policy=policy.SMTP)


def test_an_email_with_a_card_iban_ssn_and_key_stores_none_in_clear(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    email_inbox: tuple[str, int, ChatopsProcess],
) -> None:
    inbox, port, _ = email_inbox
    marker = new_marker(8)
    sender = f"jane-{marker}@customer.example"
    llm.script(
        Reply(content=PLAN),
        Reply(content={"answer": f"We have started the refund ({marker}).", "citations": []}),
        match=marker,
    )
    # The listener loads the detector for the first text that needs it: seconds, once.
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.sendmail(sender, [inbox], _mail(sender, inbox, marker))

    request = wait_for(
        lambda: db.execute(
            """SELECT id, status, error, payload FROM inbound_requests
                WHERE source = 'email' AND external_id = %s AND status IN ('done', 'failed')""",
            (f"<{marker}@customer.example>",),
        ).fetchone(),
        timeout=90,
        message="the email's request to be finished",
    )
    assert request["status"] == "done", request["error"]
    assert "**** **** **** 4242" in request["payload"]["text"]
    assert request["payload"]["from"]["address"] == sender  # still answerable
    action = db.execute(
        "SELECT id, payload FROM pending_actions WHERE conversation_id = %s",
        (request["payload"]["conversation_id"],),
    ).fetchone()
    assert action is not None  # the agent drafted a reply from the masked text
    assert f"({marker})" in action["payload"]["text"]

    raw = db.execute(
        "SELECT raw, raw_sealed FROM email_messages WHERE message_id = %s",
        (f"<{marker}@customer.example>",),
    ).fetchone()
    assert raw is not None and raw["raw_sealed"] is True
    assert CARD.encode() not in bytes(raw["raw"]) and marker.encode() not in bytes(raw["raw"])

    # The audit entry of the proposal: as approvers see it (sender partly masked).
    audited = db.execute(
        """SELECT details::text AS details FROM audit_log
            WHERE subject = %s AND action = 'action.requested'""",
        (f"action:{action['id']}",),
    ).fetchone()
    assert audited is not None
    assert sender not in audited["details"] and "Jane Roe" not in audited["details"]
    assert f"{sender[0]}***@customer.example" in audited["details"]
    assert clear_copies(db) == []


def test_what_the_policy_masks_for_good_is_never_stored_either(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """A tenant whose policy does not let phone numbers come back (not 'reversible'):
    a phone number in a mention is stored masked too, as cards are."""
    phone = "+44 20 7946 0958"
    db.execute(
        """INSERT INTO guardrail_policies (tenant_id, policy, updated_by)
           VALUES (%s, %s, 'test')
           ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy""",
        (tenant, Jsonb({"pii": {"reversible": ["EMAIL_ADDRESS", "PERSON", "IP_ADDRESS"]}})),
    )
    try:
        question = unique_question(f"Call me back on {phone} about the invoice")
        script_answer(llm, "about the invoice", "Someone will call you back.")
        asked = mention(stack.slack, question)
        wait_for_answer(stack.slack, asked.message.ts)
        stored = db.execute(
            """SELECT payload::text AS text FROM inbound_requests
                WHERE source = 'slack' AND payload->'event'->>'ts' = %s""",
            (asked.message.ts,),
        ).fetchone()
        assert stored is not None
        assert phone not in stored["text"] and "0958" in stored["text"]
        held = db.execute(
            "SELECT count(*) AS n FROM messages WHERE text LIKE %s", (f"%{phone}%",)
        ).fetchone()
        assert held == {"n": 0}
    finally:
        db.execute("DELETE FROM guardrail_policies WHERE tenant_id = %s", (tenant,))
