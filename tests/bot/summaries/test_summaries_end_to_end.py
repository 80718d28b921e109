"""Summaries asked for in Slack, run by the worker's code against real Postgres, the
Slack emulator and the scripted model: what the person sees in the thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from bot.agent.run_request import run_request
from bot.agent.runs import WorkerDeps
from connectors.slack.web_client import make_web_client
from core.db import open_pool
from core.settings import load_settings
from guardrails.facade import build_guardrails
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_workspace import Channel
from testbed.markers import new_marker
from tests.support.channels import ADMIN, new_channel
from tests.support.conversation import GENERAL, REQUESTER, bot_replies, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

DB = psycopg.Connection[dict[str, Any]]
APPROVER = "U0APPROVER"


@pytest.fixture
def deps(database_url: str, stack: Stack, llm: OpenAIEmulator) -> Iterator[WorkerDeps]:
    pool = open_pool(database_url, max_size=2)
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    yield in_process_deps(stack, llm, pool, build_guardrails(settings, pool))
    pool.close()


def ask(
    db: DB, stack: Stack, channel: str, text: str, *, thread_ts: str | None = None
) -> tuple[int, str]:
    """The requester mentions the bot with ``text``, stored as the listener stores it; the
    request's id and the ts of the thread the answer goes to."""
    text = f"<@{stack.slack.bot_user_id}> {text}"
    stored = store_mention(db, stack, text, channel=channel, thread_ts=thread_ts)
    return stored.request_id, thread_ts or stored.ts


def answer(stack: Stack, thread_ts: str, channel: str) -> str:
    replies = bot_replies(stack.slack, thread_ts, channel)
    assert replies, "the bot did not answer"
    return replies[-1].text


def permalink(stack: Stack, channel: str, ts: str) -> str:
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    return str(client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])


def summary(
    overview: str,
    decisions: list[tuple[str, list[int]]] = (),  # type: ignore[assignment]
    questions: list[tuple[str, list[int]]] = (),  # type: ignore[assignment]
    actions: list[tuple[str, list[int]]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    def items(pairs: list[tuple[str, list[int]]]) -> list[dict[str, Any]]:
        return [{"text": text, "messages": cited} for text, cited in pairs]

    return {
        "overview": overview,
        "decisions": items(decisions),
        "open_questions": items(questions),
        "action_items": items(actions),
    }


def prompts(llm: OpenAIEmulator, marker: str) -> list[str]:
    return ["\n".join(str(m["content"]) for m in body["messages"]) for body in llm.requests(marker)]


def test_thread_summary_cites_the_messages_it_draws_on(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """ "@chatops summarise this thread": decisions, open questions and action items in
    their own sections, each ending with links to the real messages, people mentioned."""
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    ws = stack.slack.workspace
    parent = ws.post_message(channel, user=ADMIN, text=f"Launch plan for v2 ({marker})?")
    first = ws.post_message(
        channel, user=APPROVER, text="Let's ship on Tuesday.", thread_ts=parent.ts
    )
    second = ws.post_message(
        channel, user=ADMIN, text="Agreed, Tuesday. Who writes the notes?", thread_ts=parent.ts
    )
    llm.script(
        Reply(
            content=summary(
                "Planning the v2 launch.",
                decisions=[(f"<@{APPROVER}> and <@{ADMIN}> agreed to ship on Tuesday.", [2, 3])],
                questions=[("Who writes the release notes?", [3])],
                actions=[(f"<@{APPROVER}> to prepare the launch.", [2])],
            )
        ),
        match=marker,
    )

    request_id, thread_ts = ask(db, stack, channel, "summarise this thread", thread_ts=parent.ts)
    run_request(deps, request_id)

    text = answer(stack, thread_ts, channel)
    assert text.startswith("*Summary of this thread*")
    decisions = text.index("*Decisions*")
    questions = text.index("*Open questions*")
    actions = text.index("*Action items*")
    assert decisions < questions < actions
    decision_line = text[decisions:questions]
    assert "ship on Tuesday" in decision_line
    assert permalink(stack, channel, first.ts) in decision_line
    assert permalink(stack, channel, second.ts) in decision_line
    assert permalink(stack, channel, second.ts) in text[questions:actions]
    assert f"<@{APPROVER}>" in text and f"<@{ADMIN}>" in text
    assert "3 messages read" in text
    # The model saw the thread, numbered, and not the request for the summary itself.
    (prompt,) = prompts(llm, marker)
    assert "[2]" in prompt and "Let's ship on Tuesday." in prompt
    assert "summarise this thread" not in prompt
    status = db.execute("SELECT status FROM inbound_requests WHERE id = %s", (request_id,))
    assert status.fetchone() == {"status": "done"}


def _last_monday_midnight_utc() -> datetime:
    today = datetime.now(UTC).date()
    back = (today.weekday() - 0) % 7 or 7
    return datetime.combine(today - timedelta(days=back), datetime.min.time(), tzinfo=UTC)


def test_since_monday_reads_only_from_monday_and_then_only_newer_messages(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """ "What did I miss in #x since Monday?" asks Slack for the history from Monday
    midnight in the workspace's zone; asked again, only for what came after."""
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    ws = stack.slack.workspace
    monday = _last_monday_midnight_utc()
    ws.post_message(
        channel,
        user=ADMIN,
        text=f"OLD-{marker} from before Monday",
        posted_at=(monday - timedelta(days=3)).timestamp(),
    )
    ws.post_message(channel, user=ADMIN, text=f"NEW-{marker} the invoice bug is fixed")
    llm.script(
        Reply(content=summary("Bug fixes.", decisions=[("The invoice bug is fixed.", [1])])),
        Reply(content=summary("Bug fixes.", decisions=[("Both bugs are fixed.", [1, 2])])),
        match=f"NEW-{marker}",
    )

    request_id, thread_ts = ask(
        db, stack, GENERAL, f"what did I miss in <#{channel}> since Monday?"
    )
    run_request(deps, request_id)

    text = answer(stack, thread_ts, GENERAL)
    assert f"What happened in <#{channel}> since Monday" in text
    assert "The invoice bug is fixed." in text
    (prompt,) = prompts(llm, f"NEW-{marker}")
    assert f"OLD-{marker}" not in prompt
    reads = [
        c for c in stack.slack.calls("conversations.history") if c.params["channel"] == channel
    ]
    assert [Decimal(str(c.params["oldest"])) for c in reads] == [Decimal(str(monday.timestamp()))]

    # Asked again after one more message: Slack is asked only for what is newer.
    newer = ws.post_message(channel, user=APPROVER, text=f"NEW-{marker} and the export bug too")
    request_id, thread_ts = ask(db, stack, GENERAL, f"catch me up on <#{channel}> since Monday")
    run_request(deps, request_id)
    reads = [
        c for c in stack.slack.calls("conversations.history") if c.params["channel"] == channel
    ]
    assert len(reads) == 2
    assert Decimal(str(reads[1].params["oldest"])) > Decimal(str(monday.timestamp()))
    assert [m["ts"] for m in reads[1].response["messages"]] == [newer.ts]
    second_prompt = prompts(llm, f"NEW-{marker}")[1]
    assert "the invoice bug is fixed" in second_prompt and "the export bug too" in second_prompt
    assert "Both bugs are fixed." in answer(stack, thread_ts, GENERAL)
    # What was read is stored for the tenant, masked as stored text is.
    stored = db.execute(
        "SELECT count(*) AS n FROM slack_read_messages WHERE channel_id = %s", (channel,)
    ).fetchone()
    assert stored == {"n": 2}


def test_a_private_channel_is_never_summarised_into_another_channel(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """Asked in #general about a private channel both are in: a clear refusal, and
    nothing of the private channel reaches the model or the reply."""
    marker = new_marker(8)
    private = "G0P" + marker.upper()
    ws = stack.slack.workspace
    ws.add_channel(
        Channel(
            private,
            f"secret-{marker}",
            int(time.time()),
            ADMIN,
            {ADMIN, REQUESTER, stack.slack.bot_user_id},
            is_private=True,
        )
    )
    ws.post_message(private, user=ADMIN, text=f"SECRET-{marker}: the acquisition closes Friday")

    request_id, thread_ts = ask(db, stack, GENERAL, f"what did I miss in <#{private}>?")
    run_request(deps, request_id)

    text = answer(stack, thread_ts, GENERAL)
    assert "is private" in text and "direct message" in text
    assert f"SECRET-{marker}" not in text and "acquisition" not in text
    assert llm.requests(f"SECRET-{marker}") == []
    everything_posted = [m.text for m in ws.history(GENERAL)] + [
        m.text for m in ws.thread(GENERAL, thread_ts)
    ]
    assert not any("acquisition" in t for t in everything_posted)


def test_a_private_channel_is_summarised_in_the_askers_direct_messages(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """The same question in a direct message with the app, which only the asker reads,
    is answered."""
    marker = new_marker(8)
    private = "G0Q" + marker.upper()
    ws = stack.slack.workspace
    ws.add_channel(
        Channel(
            private,
            f"secret-{marker}",
            int(time.time()),
            ADMIN,
            {ADMIN, REQUESTER, stack.slack.bot_user_id},
            is_private=True,
        )
    )
    ws.post_message(private, user=ADMIN, text=f"SECRET-{marker}: budget approved")
    llm.script(
        Reply(content=summary("Budget.", decisions=[("The budget was approved.", [1])])),
        match=f"SECRET-{marker}",
    )
    dm = ws.channel(REQUESTER).id
    request_id, thread_ts = ask(db, stack, dm, f"what did I miss in <#{private}>?")
    run_request(deps, request_id)
    assert "The budget was approved." in answer(stack, thread_ts, dm)


def test_channels_the_asker_or_the_bot_is_not_in_are_refused(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    ws = stack.slack.workspace
    marker = new_marker(8)
    without_asker = "C0NA" + marker.upper()
    without_bot = "C0NB" + marker.upper()
    ws.add_channel(
        Channel(
            without_asker, f"na-{marker}", int(time.time()), ADMIN, {ADMIN, stack.slack.bot_user_id}
        )
    )
    ws.add_channel(
        Channel(without_bot, f"nb-{marker}", int(time.time()), ADMIN, {ADMIN, REQUESTER})
    )
    ws.post_message(without_asker, user=ADMIN, text=f"HIDDEN-{marker}")

    request_id, thread_ts = ask(db, stack, GENERAL, f"summarise <#{without_asker}> this week")
    run_request(deps, request_id)
    assert "You're not a member of" in answer(stack, thread_ts, GENERAL)

    request_id, thread_ts = ask(db, stack, GENERAL, f"what did I miss in <#{without_bot}>")
    run_request(deps, request_id)
    assert "I'm not a member of" in answer(stack, thread_ts, GENERAL)
    assert llm.requests(f"HIDDEN-{marker}") == []


def test_a_rate_limited_history_read_waits_and_goes_on(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """Slack answers 429 with Retry-After: the read waits that long and is made again."""
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    stack.slack.workspace.post_message(channel, user=ADMIN, text=f"RL-{marker} deploy done")
    llm.script(
        Reply(content=summary("Deploys.", decisions=[("The deploy is done.", [1])])),
        match=f"RL-{marker}",
    )
    stack.slack.fail_next("conversations.history", retry_after=1)
    request_id, thread_ts = ask(db, stack, GENERAL, f"catch me up on <#{channel}>")
    started = time.monotonic()
    run_request(deps, request_id)
    assert time.monotonic() - started >= 1.0
    assert "The deploy is done." in answer(stack, thread_ts, GENERAL)
    reads = [
        c for c in stack.slack.calls("conversations.history") if c.params.get("channel") == channel
    ]
    assert [c.status for c in reads] == [429, 200]


def test_what_did_i_miss_in_the_assistant_panel_means_the_channel_being_viewed(
    stack: Stack, db: DB, llm: OpenAIEmulator
) -> None:
    """In the side panel, "this channel" is the one the person has open beside it: the
    running stack (listener, queue, worker) answers with that channel's summary."""
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    stack.slack.workspace.post_message(channel, user=ADMIN, text=f"PANEL-{marker} we moved standup")
    llm.script(
        Reply(content=summary("Standup.", decisions=[("Standup moved to 10:00.", [1])])),
        match=f"PANEL-{marker}",
    )
    dm = stack.slack.workspace.channel(REQUESTER).id
    root = stack.slack.open_assistant_thread(REQUESTER, context_channel=channel).message
    wait_for(
        lambda: (
            (
                row := db.execute(
                    "SELECT assistant_context FROM conversations WHERE external_key = %s",
                    (f"{dm}:{root.ts}",),
                ).fetchone()
            )
            and row["assistant_context"]["channel_id"] == channel
        ),
        message="the panel's context stored",
    )
    stack.slack.post_as_user(REQUESTER, dm, "what did I miss in this channel?", root.ts)
    reply = wait_for_answer(stack.slack, root.ts, channel=dm)
    assert f"What happened in <#{channel}>" in reply.text
    assert "Standup moved to 10:00." in reply.text
    link = permalink(stack, channel, stack.slack.workspace.history(channel)[-1].ts)
    assert link in reply.text


def test_stored_history_is_masked_and_the_model_never_sees_a_card_number(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    stack.slack.workspace.post_message(
        channel, user=ADMIN, text=f"CARD-{marker} refund went to card 4111 1111 1111 1111"
    )
    llm.script(
        Reply(content=summary("Refunds.", decisions=[("The refund was sent.", [1])])),
        match=f"CARD-{marker}",
    )
    request_id, thread_ts = ask(db, stack, GENERAL, f"catch me up on <#{channel}> today")
    run_request(deps, request_id)
    assert "The refund was sent." in answer(stack, thread_ts, GENERAL)
    (prompt,) = prompts(llm, f"CARD-{marker}")
    assert "4111 1111 1111 1111" not in prompt
    stored = db.execute(
        "SELECT text FROM slack_read_messages WHERE channel_id = %s", (channel,)
    ).fetchone()
    assert stored is not None
    assert "4111 1111 1111 1111" not in stored["text"] and "1111" in stored["text"]


def test_a_thread_summary_asked_outside_a_thread_says_where_to_ask(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    channel = new_channel(stack.slack)
    request_id, thread_ts = ask(db, stack, channel, "summarise this thread")
    run_request(deps, request_id)
    assert "reply inside that thread" in answer(stack, thread_ts, channel)
    assert llm.requests() == []


def test_a_channel_summary_reads_its_threads_and_later_only_their_new_replies(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    marker = new_marker(8)
    channel = new_channel(stack.slack)
    ws = stack.slack.workspace
    parent = ws.post_message(channel, user=ADMIN, text=f"THREAD-{marker} pricing change?")
    ws.post_message(channel, user=APPROVER, text="Yes, from January.", thread_ts=parent.ts)
    llm.script(
        Reply(content=summary("Pricing.", decisions=[("Prices change in January.", [2])])),
        Reply(content=summary("Pricing.", decisions=[("Prices change on 1 January.", [3])])),
        match=f"THREAD-{marker}",
    )
    request_id, thread_ts = ask(db, stack, GENERAL, f"what did I miss in <#{channel}> today")
    run_request(deps, request_id)
    text = answer(stack, thread_ts, GENERAL)
    reply_ts = ws.thread(channel, parent.ts)[1].ts
    assert "Prices change in January." in text and permalink(stack, channel, reply_ts) in text
    (prompt,) = prompts(llm, f"THREAD-{marker}")
    assert "↳ in the thread above" in prompt and "Yes, from January." in prompt

    later = ws.post_message(channel, user=ADMIN, text="On the 1st.", thread_ts=parent.ts)
    request_id, thread_ts = ask(db, stack, GENERAL, f"what did I miss in <#{channel}> today")
    run_request(deps, request_id)
    assert "Prices change on 1 January." in answer(stack, thread_ts, GENERAL)
    reads = [
        c
        for c in stack.slack.calls("conversations.replies")
        if c.params.get("channel") == channel and c.params.get("ts") == parent.ts
    ]
    assert len(reads) == 2
    # The second read asked only for replies after the one stored.
    assert Decimal(str(reads[1].params["oldest"])) == Decimal(reply_ts)
    assert [m["ts"] for m in reads[1].response["messages"]] == [parent.ts, later.ts]
    second = prompts(llm, f"THREAD-{marker}")[1]
    assert "Yes, from January." in second and "On the 1st." in second


def test_an_internal_channel_is_not_summarised_into_a_slack_connect_channel(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    """People of another organisation read a Slack Connect channel: an internal channel's
    summary is refused there."""
    marker = new_marker(8)
    internal = new_channel(stack.slack)
    shared = new_channel(stack.slack, shared=True)
    stack.slack.workspace.post_message(internal, user=ADMIN, text=f"INTERNAL-{marker} margins")
    request_id, thread_ts = ask(db, stack, shared, f"what did I miss in <#{internal}>?")
    run_request(deps, request_id)
    # Answers in a Slack Connect channel are shown to the asker alone by default.
    (shown,) = [
        m for m in stack.slack.workspace.ephemeral_messages(REQUESTER) if m.channel == shared
    ]
    text = str(shown.blocks)
    assert "outside your organisation" in text and "margins" not in text
    assert not [m for m in bot_replies(stack.slack, thread_ts, shared) if "margins" in m.text]
    assert llm.requests(f"INTERNAL-{marker}") == []


def test_messages_read_for_summaries_are_forgotten_after_the_retention(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    from bot.summaries.reading import channel_messages, forget_old_reads

    channel = new_channel(stack.slack)
    ws = stack.slack.workspace
    old = ws.post_message(
        channel, user=ADMIN, text="from long ago", posted_at=time.time() - 40 * 86_400
    )
    ws.post_message(channel, user=ADMIN, text="from today")
    tenant = db.execute(
        "SELECT tenant_id FROM slack_installations WHERE team_id = %s",
        (ws.team.id,),
    ).fetchone()
    assert tenant is not None
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    with deps.pool.connection() as conn:
        read = channel_messages(
            conn,
            client,
            tenant["tenant_id"],
            channel=channel,
            since=datetime.now(UTC) - timedelta(days=45),
        )
        assert [m.text for m in read] == ["from long ago", "from today"]
        assert forget_old_reads(conn) >= 1
    kept = db.execute(
        "SELECT ts FROM slack_read_messages WHERE channel_id = %s", (channel,)
    ).fetchall()
    assert old.ts not in [k["ts"] for k in kept] and len(kept) == 1


def test_without_a_model_a_summary_request_says_so(stack: Stack, database_url: str, db: DB) -> None:
    from core.knowledge import EmptyKnowledge, NoTools

    pool = open_pool(database_url, max_size=2)
    settings = load_settings(database_url=database_url, slack_signing_secret="test-secret")
    offline = WorkerDeps(
        pool=pool,
        llm=None,
        retriever=EmptyKnowledge(),
        tools=NoTools(),
        slack_client=lambda token: make_web_client(token, stack.slack.api_url),
        max_steps=6,
        prices={},
        guardrails=build_guardrails(settings, pool),
    )
    try:
        channel = new_channel(stack.slack)
        parent = stack.slack.workspace.post_message(channel, user=ADMIN, text="A topic")
        request_id, thread_ts = ask(db, stack, channel, "tl;dr", thread_ts=parent.ts)
        run_request(offline, request_id)
    finally:
        pool.close()
    assert "no language model is configured" in answer(stack, thread_ts, channel)


def test_in_a_direct_message_a_catch_up_without_a_channel_asks_which(
    stack: Stack, deps: WorkerDeps, db: DB, llm: OpenAIEmulator
) -> None:
    dm = stack.slack.workspace.channel(REQUESTER).id
    request_id, thread_ts = ask(db, stack, dm, "what did I miss since yesterday?")
    run_request(deps, request_id)
    assert "Which channel should I summarise?" in answer(stack, thread_ts, dm)
    assert llm.requests() == []
