"""Per-channel behaviour and thread pinning, through the real listener, worker and the
Slack and OpenAI emulators: what a person in the channel sees, and what the model is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.agent.answer_blocks import ACTION_ASK_HUMAN
from bot.agent.private_answers import SHARE_ACTION
from bot.agent.run_request import THINKING_TEXT
from bot.intake.channel_listeners import share
from core.agent_template import load_templates
from core.db import open_async_pool
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import EphemeralMessage, Message, UserGroup
from testbed.markers import new_marker
from tests.support.channels import ADMIN, admin_command, new_channel
from tests.support.conversation import REQUESTER, script_answer, unique_question
from tests.support.processes import wait_for
from tests.support.stack import Stack

DB = psycopg.Connection[dict[str, Any]]
TEMPLATES = load_templates(Path(__file__).resolve().parents[3] / "templates")


@pytest.fixture
def tenant(stack: Stack, db: DB) -> Iterator[int]:
    row = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (stack.slack.workspace.team.id,),
    ).fetchone()
    assert row is not None
    tenant_id: int = row["tenant_id"]
    db.execute(
        """INSERT INTO tenant_settings (tenant_id) VALUES (%s)
           ON CONFLICT (tenant_id) DO UPDATE SET paused = false, agent_template = NULL""",
        (tenant_id,),
    )
    yield tenant_id


@pytest.fixture
def connect(stack: Stack, db: DB, tenant: int) -> Iterator[Callable[[str, str], None]]:
    """``connect(name, words)`` runs `/agent connect NAME WORDS` as the admin; what the
    test connected is disconnected afterwards (the workspace is shared by the session)."""
    before = {
        r["connector"]
        for r in db.execute(
            "SELECT connector FROM connector_credentials WHERE tenant_id = %s", (tenant,)
        )
    }

    def run(name: str, words: str) -> None:
        reply = admin_command(stack.slack, "C0GENERAL", f"connect {name} {words}")
        assert "is connected" in reply, reply

    yield run
    db.execute(
        "DELETE FROM connector_credentials WHERE tenant_id = %s AND NOT connector = ANY(%s)",
        (tenant, list(before)),
    )


GOOGLE_WORDS = "1234-abc.apps.googleusercontent.com client-secret-1 refresh-token-1"


def ask(slack: SlackEmulator, channel: str, text: str, thread_ts: str | None = None) -> str:
    """A mention in the channel (or a reply in a thread, without mention); returns its ts."""
    if thread_ts is None:
        text = f"<@{slack.bot_user_id}> {text}"
    return slack.post_as_user(REQUESTER, channel, text, thread_ts).message.ts


def answers(slack: SlackEmulator, channel: str, thread_ts: str) -> list[Message]:
    bot_id = slack.workspace.app.bot_id
    return [
        m
        for m in slack.thread(channel, thread_ts)
        if m.bot_id == bot_id
        and m.text != THINKING_TEXT
        and not slack.workspace.is_streaming(m.channel, m.ts)
    ]


def wait_for_answers(
    slack: SlackEmulator, channel: str, thread_ts: str, count: int = 1
) -> list[Message]:
    found: list[Message] = wait_for(
        lambda: (lambda got: got if len(got) >= count else None)(
            answers(slack, channel, thread_ts)
        ),
        timeout=30,
        message=f"{count} answer(s) in {channel}:{thread_ts}",
    )
    return found


def system_text(request: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in request["messages"] if m["role"] == "system")


def offered_tools(request: dict[str, Any]) -> set[str]:
    """The tools a Plan request lets the model call (one call shape per tool in its response
    format), checked against the tools its system message describes."""
    calls = request["response_format"]["json_schema"]["schema"]["properties"]["tool_calls"]
    shapes = calls["items"].get("anyOf", [calls["items"]])
    names = {name for s in shapes for name in s["properties"]["name"].get("enum", [])}
    described = {name for name in names if f"- {name}(" in system_text(request)}
    assert described == names
    return names


def run_of(db: DB, tenant: int, channel: str, ts: str) -> dict[str, Any]:
    row = db.execute(
        """SELECT r.template_name, r.template_version, r.prompt_version
           FROM agent_runs r JOIN inbound_requests q ON q.id = r.request_id
           WHERE r.tenant_id = %s AND q.payload->'event'->>'channel' = %s
             AND q.payload->'event'->>'ts' = %s""",
        (tenant, channel, ts),
    ).fetchone()
    assert row is not None
    return row


def test_support_template_offers_only_its_tools_and_prompt(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    connect: Callable[[str, str], None],
) -> None:
    """With the support template on a channel, the model sees the support prompt and only
    the template's tools, and the run records which template and prompt ran."""
    # Given a workspace with Zendesk and Gmail connected, and a channel on the support template
    connect("zendesk", "acme agent@acme.example/token:abcdefgh12345")
    connect("gmail", GOOGLE_WORDS)
    channel = new_channel(stack.slack)
    assert "support" in admin_command(stack.slack, channel, "channel template=support")
    question = unique_question("Where is my refund?")
    script_answer(llm, question, "It is on its way.")

    # When someone asks there
    ts = ask(stack.slack, channel, question)

    # Then the answer arrives, produced with the support prompt and the support tools only
    assert wait_for_answers(stack.slack, channel, ts)[0].text.startswith("It is on its way.")
    plan = llm.requests(match=question)[0]
    support = TEMPLATES["support"]
    assert support.prompt.text.strip() in system_text(plan)
    assert offered_tools(plan) == set(support.tools)
    assert run_of(db, tenant, channel, ts) == {
        "template_name": "support",
        "template_version": support.version,
        "prompt_version": support.prompt.version,
    }


def test_no_template_offers_the_tools_of_connected_services_and_the_default_prompt(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,
    connect: Callable[[str, str], None],
) -> None:
    """A channel with no template (and none for the workspace) offers every tool that
    needs no connector, and those of the services the workspace connected: the others
    would only cost prompt and fail ("not connected")."""
    channel = new_channel(stack.slack)

    def offered_for(topic: str) -> set[str]:
        question = unique_question(topic)
        script_answer(llm, question, "Here they are.")
        ts = ask(stack.slack, channel, question)
        wait_for_answers(stack.slack, channel, ts)
        plan = llm.requests(match=question)[0]
        assert "Your role here" not in system_text(plan)
        assert run_of(db, tenant, channel, ts)["template_name"] is None
        return offered_tools(plan)

    before = offered_for("Can you post the release notes?")
    assert {"post_to_channel", "slack_search_messages"} <= before
    assert not {t for t in before if t.startswith(("zendesk_", "hubspot_", "gmail_", "calendar_"))}

    connect("hubspot", "pat-na1-abcdefgh12345")
    after = offered_for("Who is our contact at Globex?")
    assert {"hubspot_search_contacts", "hubspot_add_contact_note"} <= after
    assert before <= after and not {t for t in after if t.startswith("zendesk_")}


def test_follow_up_keeps_the_pinned_template_after_the_channel_changes(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """A follow-up in a thread needs no mention and is answered by the template the thread
    started with, even after an admin moved the channel to another template."""
    # Given a thread started under the support template
    channel = new_channel(stack.slack)
    admin_command(stack.slack, channel, "channel template=support")
    first = unique_question("My order never arrived")
    script_answer(llm, first, "Sorry to hear that.")
    root = ask(stack.slack, channel, first)
    wait_for_answers(stack.slack, channel, root)

    # When the channel's template changes and the person follows up without a mention
    admin_command(stack.slack, channel, "channel template=sales")
    follow_up = unique_question("and when will it come")
    script_answer(llm, follow_up, "Within two days.")
    reply_ts = ask(stack.slack, channel, follow_up, thread_ts=root)

    # Then the follow-up is answered in the thread, by the support template
    assert wait_for_answers(stack.slack, channel, root, count=2)[-1].text.startswith(
        "Within two days."
    )
    plan = llm.requests(match=follow_up)[0]
    assert TEMPLATES["support"].prompt.text.strip() in system_text(plan)
    assert TEMPLATES["sales"].prompt.text.strip() not in system_text(plan)
    assert run_of(db, tenant, channel, reply_ts)["template_name"] == "support"

    # And a new thread in the channel uses the new template
    fresh = unique_question("Which deals close this week?")
    script_answer(llm, fresh, "Two of them.")
    fresh_ts = ask(stack.slack, channel, fresh)
    wait_for_answers(stack.slack, channel, fresh_ts)
    assert run_of(db, tenant, channel, fresh_ts)["template_name"] == "sales"


def private_answer(slack: SlackEmulator, channel: str, thread_ts: str) -> EphemeralMessage:
    def shown() -> EphemeralMessage | None:
        for message in slack.workspace.ephemeral_messages(REQUESTER):
            if message.channel == channel and message.thread_ts == thread_ts and message.blocks:
                return message
        return None

    found: EphemeralMessage = wait_for(shown, timeout=30, message="the private answer")
    return found


def test_private_answer_is_shared_by_its_button_once(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, database_url: str
) -> None:
    """In a private channel the answer is shown only to the asker; its Share button posts
    it in the thread for everyone, and sharing again posts nothing more."""
    # Given a channel whose answers are private
    channel = new_channel(stack.slack)
    admin_command(stack.slack, channel, "channel visibility=private")
    question = unique_question("What is my salary band?")
    script_answer(llm, question, "Band 4, privately.")

    # When someone asks
    ts = ask(stack.slack, channel, question)

    # Then only they see the answer, with a Share button, and the thread has nothing
    shown = private_answer(stack.slack, channel, ts)
    assert shown.text.startswith("Band 4, privately.")
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM agent_runs r JOIN inbound_requests q ON q.id = r.request_id"
            " WHERE q.payload->'event'->>'ts' = %s AND r.status = 'answered'",
            (ts,),
        ).fetchone(),
        message="the run to finish",
    )
    assert [m for m in stack.slack.thread(channel, ts) if m.bot_id] == []

    # When they click "Share with channel"
    click = stack.slack.click_button(REQUESTER, channel, shown.ts, SHARE_ACTION)
    assert click.ok

    # Then the answer is in the thread for everyone, and their copy says it was shared
    public = wait_for_answers(stack.slack, channel, ts)
    assert len(public) == 1 and public[0].text.startswith("Band 4, privately.")
    assert f"<@{REQUESTER}>" in public[0].text
    # with the feedback controls of any public answer, Ask a human included
    blocks = public[0].blocks or []
    assert any(b["type"] == "context_actions" for b in blocks)
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert ACTION_ASK_HUMAN in actions
    wait_for(
        lambda: (
            "Shared with the channel"
            in stack.slack.workspace.ephemeral_message(REQUESTER, shown.ts).text
        ),
        message="the private copy to say it was shared",
    )

    # And a second share of the same answer (a double click) posts nothing more
    answer_id = int(
        shown.blocks[-1]["elements"][0]["value"]  # type: ignore[index]
    )

    async def share_again() -> str | None:
        pool = await open_async_pool(database_url, max_size=1)
        try:
            client = AsyncWebClient(token=stack.slack.bot_token, base_url=stack.slack.api_url)
            return await share(pool, client, tenant, answer_id, REQUESTER)
        finally:
            await pool.close()

    assert asyncio.run(share_again()) is None
    assert len(answers(stack.slack, channel, ts)) == 1


def test_person_outside_the_allowed_group_is_politely_refused(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Only the channel's allowed user groups may ask; others are told privately, kindly,
    and no run starts."""
    # Given a channel where only the on-call group may ask, without the requester in it
    channel = new_channel(stack.slack)
    group = "S0T" + new_marker(8).upper()
    stack.slack.workspace.add_usergroup(
        UserGroup(group, f"oncall-{group.lower()}", "On call", [ADMIN])
    )
    admin_command(stack.slack, channel, f"channel ask=<!subteam^{group}|@oncall>")
    question = unique_question("Can you restart the payments service?")
    script_answer(llm, question, "Restarting.")

    # When the requester asks
    ts = ask(stack.slack, channel, question)

    # Then they alone get a polite note, nothing is posted, no model call, no run
    note: EphemeralMessage = wait_for(
        lambda: next(
            (
                m
                for m in stack.slack.workspace.ephemeral_messages(REQUESTER)
                if m.channel == channel and m.thread_ts == ts
            ),
            None,
        ),
        timeout=30,
        message="the refusal",
    )
    assert note.text.startswith("Sorry") and f"<!subteam^{group}>" in note.text
    # The worker posts the note, then closes the request: under load the second can lag.
    status = wait_for(
        lambda: db.execute(
            "SELECT id, status FROM inbound_requests WHERE payload->'event'->>'ts' = %s"
            " AND status <> 'running'",
            (ts,),
        ).fetchone(),
        timeout=30,
        message="the request closed",
    )
    assert status["status"] == "ignored"
    assert (
        db.execute("SELECT 1 FROM agent_runs WHERE request_id = %s", (status["id"],)).fetchone()
        is None
    )
    assert llm.requests(match=question) == []
    assert answers(stack.slack, channel, ts) == []


def test_every_question_mode_answers_questions_without_a_mention(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """In a channel set to answer every question, a question is answered with no mention,
    and "thanks!" is left alone."""
    channel = new_channel(stack.slack)
    admin_command(stack.slack, channel, "channel reply=all")
    question = unique_question("how do I reset my VPN token?")
    script_answer(llm, question, "Open the VPN portal.")

    asked = stack.slack.post_as_user(REQUESTER, channel, question)
    thanks = stack.slack.post_as_user(REQUESTER, channel, "thanks!")

    assert wait_for_answers(stack.slack, channel, asked.message.ts)[0].text.startswith(
        "Open the VPN portal."
    )
    # The listener stores what it will answer before acking, so this is already final.
    assert (
        db.execute(
            "SELECT 1 FROM inbound_requests WHERE payload->'event'->>'ts' = %s",
            (thanks.message.ts,),
        ).fetchone()
        is None
    )


def test_mention_only_channel_ignores_unmentioned_questions(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """By default a question without a mention is not for the bot."""
    channel = new_channel(stack.slack)
    asked = stack.slack.post_as_user(
        REQUESTER, channel, unique_question("how do I expense a taxi?")
    )
    assert (
        db.execute(
            "SELECT 1 FROM inbound_requests WHERE payload->'event'->>'ts' = %s",
            (asked.message.ts,),
        ).fetchone()
        is None
    )


def test_slack_connect_channel_answers_privately_from_public_knowledge(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """In a channel shared with another organisation, with nothing set, the answer is for
    the asker only, and the thread is pinned to the public collection."""
    channel = new_channel(stack.slack, shared=True)
    question = unique_question("What are your support hours?")
    script_answer(llm, question, "Nine to five.")

    ts = ask(stack.slack, channel, question)

    assert private_answer(stack.slack, channel, ts).text.startswith("Nine to five.")
    pin = db.execute(
        "SELECT pinned_settings FROM conversations WHERE tenant_id = %s AND external_key = %s",
        (tenant, f"{channel}:{ts}"),
    ).fetchone()
    assert pin is not None
    assert pin["pinned_settings"]["visibility"] == "private"
    assert pin["pinned_settings"]["collections"] == ["public"]
    assert [m for m in stack.slack.thread(channel, ts) if m.bot_id] == []
