"""Slack bot tokens are stored sealed like connector credentials: never in clear in the
database, bound to their tenant; tokens, and raw email bytes, stored in clear before are
sealed by `chatops migrate`."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid

import pytest
from psycopg.types.json import Jsonb

from connectors.email.compose import build_new_email, to_storable
from connectors.email.raw_mail import RawMailCipher
from connectors.email.tools import ReplyEmail, reply_message
from connectors.slack.bot_tokens import TokenUnreadable, bot_token_of
from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from testbed.processes import REPO
from tests.security.conftest import DB
from tests.support.conversation import mention, script_answer, unique_question, wait_for_answer
from tests.support.stack import Stack


def _installation_as_text(db: DB, team_id: str) -> str:
    row = db.execute(
        "SELECT row_to_json(i)::text AS text FROM slack_installations i WHERE team_id = %s",
        (team_id,),
    ).fetchone()
    assert row is not None
    return str(row["text"])


def test_the_installed_bot_token_is_never_stored_in_clear(
    stack: Stack, llm: OpenAIEmulator, db: DB
) -> None:
    """The workspace `chatops serve` recorded at start: its row holds no token in clear,
    anywhere; and the bot still answers, so every reader opens the sealed token."""
    team = stack.slack.workspace.team.id
    token = stack.slack.bot_token
    row = db.execute(
        "SELECT tenant_id, bot_token, bot_token_sealed FROM slack_installations WHERE team_id = %s",
        (team,),
    ).fetchone()
    assert row is not None
    assert row["bot_token"] == ""
    assert row["bot_token_sealed"] is not None
    assert token.encode() not in bytes(row["bot_token_sealed"])
    assert token not in _installation_as_text(db, team)
    assert bot_token_of(row) == token

    question = unique_question("sealed token")
    script_answer(llm, question, "Answered with a sealed token.")
    asked = mention(stack.slack, question)
    assert wait_for_answer(stack.slack, asked.message.ts).text == "Answered with a sealed token."


def test_tokens_and_raw_email_stored_in_clear_before_are_sealed_by_migrate(
    stack: Stack, db: DB
) -> None:
    """An installation written in clear (before tokens were sealed) is sealed by
    `chatops migrate` and its plaintext emptied; the sealed token opens only for its
    own tenant. An email's raw bytes stored in clear are sealed too, and so is the message
    of a drafted reply waiting for approval, which still opens to the same email."""
    team = f"T{new_marker(10).upper()}"
    token = f"xoxb-legacy-{uuid.uuid4().hex}"
    tenant = db.execute(
        "INSERT INTO tenants (name, slack_team_id) VALUES ('Legacy', %s) RETURNING id", (team,)
    ).fetchone()
    assert tenant is not None
    db.execute(
        """INSERT INTO slack_installations (tenant_id, team_id, bot_id, bot_user_id, bot_token)
           VALUES (%s, %s, 'B0LEGACY', 'U0LEGACY', %s)""",
        (tenant["id"], team, token),
    )
    assert token in _installation_as_text(db, team)
    raw = f"Subject: old mail\r\n\r\nMy card is 4242 4242 4242 4242 ({team})\r\n".encode()
    db.execute(
        """INSERT INTO email_messages (tenant_id, direction, message_id, raw, size_bytes)
           VALUES (%s, 'inbound', %s, %s, %s)""",
        (tenant["id"], f"<{team}@old.example>", raw, len(raw)),
    )

    # A drafted reply proposed before replies were sealed: its MIME message in clear.
    reply = build_new_email(
        from_address="support@old.example",
        to=["alice@customer.example"],
        subject="Re: old mail",
        body=f"Hello Alice, about {team}.",
    )
    conversation = db.execute(
        """INSERT INTO conversations (tenant_id, channel_kind, external_key)
           VALUES (%s, 'email', %s) RETURNING id""",
        (tenant["id"], f"<{team}@old.example>"),
    ).fetchone()
    assert conversation is not None
    arguments = {
        "message": to_storable(reply),
        "text": f"Hello Alice, about {team}.",
        "inbox": "support@old.example",
        "conversation_id": conversation["id"],
    }
    action = db.execute(
        """INSERT INTO pending_actions (tenant_id, conversation_id, tool, summary, payload,
             original_payload, requested_by, reason, idempotency_key, expires_at)
           VALUES (%s, %s, 'reply_email', 'Reply by email', %s, %s, 'alice@customer.example',
             'Answering', %s, now() + interval '1 day') RETURNING id""",
        (tenant["id"], conversation["id"], Jsonb(arguments), Jsonb(arguments), f"old:{team}"),
    ).fetchone()
    assert action is not None

    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "migrate"],
        env={**os.environ, **stack.env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "sealed the bot token of 1 Slack installation(s)" in done.stdout
    assert "sealed the raw bytes of" in done.stdout
    assert "sealed the message of" in done.stdout
    assert token not in done.stdout + done.stderr

    assert token not in _installation_as_text(db, team)
    row = db.execute(
        "SELECT tenant_id, bot_token, bot_token_sealed FROM slack_installations WHERE team_id = %s",
        (team,),
    ).fetchone()
    assert row is not None and row["bot_token"] == ""
    assert bot_token_of(row) == token
    with pytest.raises(TokenUnreadable):  # copied to another tenant's row, it does not open
        bot_token_of({**row, "tenant_id": row["tenant_id"] + 1})

    mail = db.execute(
        "SELECT raw, raw_sealed FROM email_messages WHERE tenant_id = %s", (tenant["id"],)
    ).fetchone()
    assert mail is not None and mail["raw_sealed"] is True
    assert b"4242" not in bytes(mail["raw"])
    opened = RawMailCipher.derive(stack.env["SLACK_SIGNING_SECRET"]).open(
        tenant["id"], f"<{team}@old.example>", bytes(mail["raw"])
    )
    assert opened == raw

    stored = db.execute(
        "SELECT payload, original_payload FROM pending_actions WHERE id = %s", (action["id"],)
    ).fetchone()
    assert stored is not None
    cipher = RawMailCipher.derive(stack.env["SLACK_SIGNING_SECRET"])
    for column in ("payload", "original_payload"):
        assert stored[column]["sealed"] is True
        assert b"alice@customer.example" not in base64.b64decode(stored[column]["message"])
        sealed = ReplyEmail.model_validate(stored[column])
        assert reply_message(cipher, tenant["id"], sealed)["Message-ID"] == reply["Message-ID"]
