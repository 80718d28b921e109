"""`/agent digest` on the running stack, and a due digest posted once by the periodic
work even when two sweeps race for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot.agent.runs import WorkerDeps
from bot.summaries.digests import claim_due_digests, send_digest
from core.db import open_pool
from core.digest_schedule import next_due
from core.settings import load_settings
from guardrails.facade import build_guardrails
from review.console.digests import parse_time
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Channel
from testbed.markers import new_marker
from tests.support.channels import ADMIN, admin_command, new_channel
from tests.support.conversation import REQUESTER
from tests.support.stack import Stack
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def deps(database_url: str, stack: Stack, llm: OpenAIEmulator) -> Iterator[WorkerDeps]:
    pool = open_pool(database_url, max_size=4)
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    yield in_process_deps(stack, llm, pool, build_guardrails(settings, pool))
    pool.close()


def command(stack: Stack, user: str, channel: str, text: str) -> str:
    reply = stack.slack.run_slash_command(user, channel, text)
    assert reply.response is not None, reply
    return str(reply.response["text"])


def test_next_due_is_the_time_of_day_in_the_workspace_zone() -> None:
    at = parse_time("09:00")
    assert at is not None
    # Thursday 10 Dec 2026, 09:30 in Paris (08:30 UTC): tomorrow 09:00 Paris.
    now = datetime(2026, 12, 10, 8, 30, tzinfo=UTC)
    assert next_due(now, at, PARIS, "daily") == datetime(2026, 12, 11, 9, 0, tzinfo=PARIS)
    # Friday after nine: weekdays skip to Monday.
    friday = datetime(2026, 12, 11, 8, 30, tzinfo=UTC)
    assert next_due(friday, at, PARIS, "weekdays") == datetime(2026, 12, 14, 9, 0, tzinfo=PARIS)
    assert parse_time("5pm") is not None and parse_time("5pm").hour == 17  # type: ignore[union-attr]
    assert parse_time("25:00") is None


def test_digest_commands_follow_the_channel_rules(stack: Stack, db: DB) -> None:
    channel = new_channel(stack.slack)
    # A member who is no admin may not post to the channel, but may have it to themselves.
    refused = command(stack, REQUESTER, channel, f"digest <#{channel}> daily 09:00")
    assert "Only workspace admins" in refused and "to me" in refused
    mine = command(stack, REQUESTER, channel, f"digest <#{channel}> weekdays 8am to me")
    assert "your direct messages" in mine and "Monday to Friday at 08:00" in mine
    done = admin_command(stack.slack, channel, f"digest <#{channel}> daily 09:00")
    assert f"posted to <#{channel}> every day at 09:00" in done

    listed = command(stack, REQUESTER, channel, "digest list")
    assert f"<#{channel}> to your direct messages, Monday to Friday at 08:00" in listed
    assert f"<#{channel}> to <#{channel}>, every day at 09:00" in listed
    rows = db.execute(
        "SELECT id, personal FROM summary_digests WHERE channel_id = %s ORDER BY id", (channel,)
    ).fetchall()
    personal, shared = rows[0]["id"], rows[1]["id"]
    # The requester removes their own, not the admin's.
    assert "Only workspace admins" in command(stack, REQUESTER, channel, f"digest remove {shared}")
    assert "is removed" in command(stack, REQUESTER, channel, f"digest remove {personal}")
    assert "is removed" in admin_command(stack.slack, channel, f"digest remove {shared}")
    assert db.execute(
        "SELECT count(*) AS n FROM summary_digests WHERE channel_id = %s", (channel,)
    ).fetchone() == {"n": 0}


def test_a_private_channels_digest_goes_only_to_itself_or_the_person(stack: Stack, db: DB) -> None:
    marker = new_marker(8).upper()
    private = "G0D" + marker
    stack.slack.workspace.add_channel(
        Channel(
            private,
            f"private-{marker.lower()}",
            int(time.time()),
            ADMIN,
            {ADMIN, REQUESTER, stack.slack.bot_user_id},
            is_private=True,
        )
    )
    elsewhere = admin_command(
        stack.slack, private, f"digest <#{private}> daily 09:00 to <#C0GENERAL>"
    )
    assert "is private" in elsewhere
    assert "Done" in admin_command(stack.slack, private, f"digest <#{private}> daily 09:00")


def test_a_due_digest_is_posted_once_even_with_two_sweeps_racing(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    stack.slack.workspace.post_message(
        channel, user=ADMIN, text=f"DIGEST-{marker} we agreed to move the demo to Friday"
    )
    llm.script(
        Reply(
            content={
                "overview": "The demo.",
                "decisions": [{"text": "The demo moves to Friday.", "messages": [1]}],
                "open_questions": [],
                "action_items": [],
            },
            repeat=True,
        ),
        match=f"DIGEST-{marker}",
    )
    assert "Done" in admin_command(stack.slack, channel, f"digest <#{channel}> daily 09:00")
    # The clock moves: the digest's time has come.
    db.execute(
        "UPDATE summary_digests SET next_due_at = now() - interval '1 second' WHERE channel_id = %s",
        (channel,),
    )

    claimed: list[tuple[int, int]] = []

    def sweep() -> None:
        with deps.pool.connection() as conn:
            claim_due_digests(conn, lambda digest_id, due: claimed.append((digest_id, due)))

    sweeps = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in sweeps:
        thread.start()
    for thread in sweeps:
        thread.join(60)
    # The stack's own workers sweep too, and queue what they claim; this test's claims
    # are run here, as the job would.
    assert len(claimed) <= 1
    with deps.pool.connection() as conn:
        for digest_id, due in claimed:
            assert send_digest(conn, deps, digest_id, due).posted
            # A retried or redelivered job does not post it again.
            assert send_digest(conn, deps, digest_id, due).reason == "already posted"

    def digests() -> list[str]:
        bot = stack.slack.workspace.app.bot_id
        return [m.text for m in stack.slack.workspace.history(channel) if m.bot_id == bot]

    # The stack's own workers sweep too; whoever claimed it, it is posted once.
    deadline = time.monotonic() + 30
    while not digests() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    (posted,) = digests()
    assert posted.startswith(f"*Daily digest of <#{channel}>*")
    assert "The demo moves to Friday." in posted and "/archives/" in posted
    row = db.execute(
        "SELECT next_due_at, last_sent_at FROM summary_digests WHERE channel_id = %s", (channel,)
    ).fetchone()
    assert row is not None and row["last_sent_at"] is not None
    # Next due: 09:00 tomorrow in the workspace's zone (UTC unless set).
    assert row["next_due_at"] > datetime.now(UTC)
    assert row["next_due_at"] <= datetime.now(UTC) + timedelta(days=1)
    assert row["next_due_at"].astimezone(UTC).strftime("%H:%M") == "09:00"


def test_the_workspace_time_zone_is_set_by_admins(stack: Stack, db: DB) -> None:
    channel = new_channel(stack.slack)
    try:
        refused = command(stack, REQUESTER, channel, "timezone Europe/Paris")
        assert "Only workspace admins" in refused
        assert "don't know" in admin_command(stack.slack, channel, "timezone Mars/Olympus")
        assert "now Europe/Paris" in admin_command(stack.slack, channel, "timezone Europe/Paris")
        shown = admin_command(stack.slack, channel, f"digest <#{channel}> daily 09:00")
        assert "09:00 (Europe/Paris)" in shown
        assert "Europe/Paris" in command(stack, REQUESTER, channel, "timezone")
    finally:
        db.execute("UPDATE tenant_settings SET time_zone = NULL")
        db.execute("DELETE FROM summary_digests WHERE channel_id = %s", (channel,))


def test_the_running_workers_post_a_due_digest_on_their_own(
    stack: Stack, db: DB, llm: OpenAIEmulator
) -> None:
    """Nothing but the stack: its workers' periodic work claims the digest and their queue
    job writes and posts it, to the person who asked for it in their direct messages."""
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    stack.slack.workspace.post_message(
        channel, user=ADMIN, text=f"SOLO-{marker} let's go with plan B"
    )
    llm.script(
        Reply(
            content={
                "overview": "Plans.",
                "decisions": [{"text": "Plan B it is.", "messages": [1]}],
                "open_questions": [],
                "action_items": [],
            }
        ),
        match=f"SOLO-{marker}",
    )
    mine = command(stack, REQUESTER, channel, f"digest <#{channel}> daily 07:30 to me")
    assert "your direct messages" in mine
    db.execute("UPDATE summary_digests SET next_due_at = now() WHERE channel_id = %s", (channel,))
    dm = stack.slack.workspace.channel(REQUESTER).id
    bot = stack.slack.workspace.app.bot_id

    def posted() -> list[str]:
        return [
            m.text
            for m in stack.slack.workspace.history(dm)
            if m.bot_id == bot and f"<#{channel}>" in m.text
        ]

    deadline = time.monotonic() + 60
    while not posted() and time.monotonic() < deadline:
        time.sleep(0.5)
    (text,) = posted()
    assert "Plan B it is." in text
    row = db.execute(
        "SELECT sent_for, last_error FROM summary_digests WHERE channel_id = %s", (channel,)
    ).fetchone()
    assert row is not None and row["sent_for"] is not None and row["last_error"] is None
