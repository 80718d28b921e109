"""The agent's bounded tool loop through the real worker: read tools' results go back to
the model, which decides the next step (another read, an action, or the answer); every
step is persisted, and a job retried after a crash never calls a tool twice."""

from __future__ import annotations

import json
from typing import Any

from bot.agent.loop import WAITING_ANSWER
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Hang, Reply
from testbed.markers import new_marker
from tests.review.conftest import APPROVER, DB, SUPPORT, tenant  # noqa: F401
from tests.support.conversation import bot_replies, mention, unique_question, wait_for_answer
from tests.support.stack import Stack

NO_MORE_TOOLS = {"intent": "answer", "search_queries": [], "tool_calls": []}


def plan(*calls: dict[str, Any]) -> Reply:
    return Reply(content={"intent": "answer", "search_queries": [], "tool_calls": list(calls)})


def search(word: str) -> dict[str, Any]:
    return {
        "name": "slack_search_messages",
        "arguments": {"query": word},
        "reason": "Find what the team said about it.",
    }


def steps_of(db: DB, question_ts: str) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT s.kind, s.output FROM agent_steps s
           JOIN agent_runs r ON r.id = s.run_id
           JOIN conversations c ON c.id = r.conversation_id
           WHERE c.slack_thread_ts = %s ORDER BY s.position""",
        (question_ts,),
    ).fetchall()


def test_an_action_the_model_repeats_in_later_turns_is_proposed_once(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    """A small model keeps a read in every turn and repeats its proposal with new wording
    each time: the post is proposed once, the new read still runs, and the model is told
    the repeated call was not made again."""
    word = f"kestrel{new_marker(6)}"
    question = unique_question(f"Find what we said about {word} and tell #support")

    def post(text: str) -> dict[str, Any]:
        return {
            "name": "post_to_channel",
            "arguments": {"channel": SUPPORT, "text": text},
            "reason": "The requester asked to tell #support.",
        }

    llm.script(
        plan(search(word), post(f"Update on {word}: nothing new yet")),
        plan(search(f"{word} rollout"), post(f"Update on {word}: still nothing new")),
        Reply(content=NO_MORE_TOOLS),
        Reply(content={"answer": "The post to #support waits for approval.", "citations": []}),
        match=question,
    )

    post_message = mention(stack.slack, question)
    wait_for_answer(stack.slack, post_message.message.ts)

    proposed = db.execute(
        "SELECT payload->>'text' AS text FROM pending_actions WHERE payload->>'text' LIKE %s",
        (f"Update on {word}%",),
    ).fetchall()
    assert proposed == [{"text": f"Update on {word}: nothing new yet"}]
    third_plan = llm.requests(match=question)[2]
    assert "repeated earlier ones and were not made again" in third_plan["messages"][-1]["content"]
    kinds = [s["kind"] for s in steps_of(db, post_message.message.ts)]
    assert kinds == ["plan", "retrieve", "act", "plan", "act", "plan", "draft", "verify"]


def test_a_read_result_feeds_the_proposed_action(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    """Search Slack, then propose a post quoting what the search found: the second Plan
    turn sees the search result, and the action waits for approval."""
    word = f"zephyr{new_marker(6)}"
    stack.slack.workspace.post_message(
        SUPPORT, user=APPROVER, text=f"The {word} rollout moved to Thursday"
    )
    question = unique_question(f"Look up the rollout date of {word} in Slack, then tell #support")
    post_call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": f"Reminder: the {word} rollout is on Thursday"},
        "reason": "The requester asked to tell #support what the search found.",
    }
    llm.script(
        plan(search(word)),
        plan(post_call),
        Reply(content={"answer": "The post to #support waits for approval.", "citations": []}),
        match=question,
    )

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)

    # The person is told the action waits for approval
    assert "Waiting for approval" in answer.text
    first_plan, second_plan, draft = llm.requests(match=question)
    # The second turn carried the search result, inside a user turn after the first plan
    assistant, results = second_plan["messages"][-2:]
    assert assistant["role"] == "assistant" and "slack_search_messages" in assistant["content"]
    assert results["role"] == "user" and "moved to Thursday" in results["content"]
    assert "moved to Thursday" not in json.dumps(first_plan["messages"])
    # The action was proposed with the arguments the second turn wrote
    action = db.execute(
        "SELECT tool, payload FROM pending_actions WHERE payload->>'text' = %s",
        (f"Reminder: the {word} rollout is on Thursday",),
    ).fetchone()
    assert action is not None and action["tool"] == "post_to_channel"
    # Each call's reply was capped for what it is for (LLM_MAX_TOKENS_PLAN, _TOOL_TURN,
    # _DRAFT at their defaults), so a small model cannot write until its context is full
    assert (first_plan["max_tokens"], second_plan["max_tokens"], draft["max_tokens"]) == (
        768,
        768,
        1024,
    )
    # The draft heard both results; every step was persisted, with its prompt size
    assert "Waiting for approval, not done yet" in draft["messages"][-1]["content"]
    kinds = [s["kind"] for s in steps_of(db, post.message.ts)]
    assert kinds == ["plan", "retrieve", "act", "plan", "act", "draft", "verify"]
    sizes = [
        s["output"]["prompt_tokens"]
        for s in steps_of(db, post.message.ts)
        if s["kind"] in ("plan", "draft")
    ]
    assert all(isinstance(n, int) and n > 0 for n in sizes)
    assert sizes[1] > sizes[0]  # the second turn carries the first turn and its results


def test_a_job_retried_after_a_crash_does_not_search_twice(
    stack: Stack, llm: OpenAIEmulator, db: DB
) -> None:
    """Killed while the model writes its second plan (after the search ran): the retried
    job replays the first plan and the search results from Postgres."""
    word = f"quokka{new_marker(6)}"
    stack.slack.workspace.post_message(SUPPORT, user=APPROVER, text=f"The {word} deal closed")
    question = unique_question(f"What happened to the {word} deal?")
    llm.script(
        plan(search(word)),
        Hang(60),
        Reply(content=NO_MORE_TOOLS),
        Reply(content={"answer": f"The {word} deal closed.", "citations": []}),
        match=question,
    )
    searches_before = len(stack.slack.calls("assistant.search.context"))
    post = mention(stack.slack, question)
    llm.wait_for_requests(count=2, match=question, timeout=30)

    stack.worker.kill()
    stack.start_worker()

    answer = wait_for_answer(stack.slack, post.message.ts, timeout=60)
    assert answer.text == f"The {word} deal closed."
    assert len(bot_replies(stack.slack, post.message.ts)) == 1
    searches = stack.slack.calls("assistant.search.context")[searches_before:]
    assert len([c for c in searches if word in json.dumps(c.params)]) == 1
    first_plans = [
        r
        for r in llm.requests(match=question)
        if "Results of your tool calls" not in json.dumps(r)
        and r["response_format"]["json_schema"]["name"] == "Plan"
    ]
    assert len(first_plans) == 1


def test_a_reply_never_says_an_action_waiting_for_approval_is_done(
    stack: Stack,
    llm: OpenAIEmulator,
    tenant: int,  # noqa: F811
) -> None:
    """The real 1.5B model wrote that it had done what it had only proposed. Through the
    guardrails (which wrap the tool's result as untrusted text), the claim is taken out
    and the thread reads what is true, above the list of what waits."""
    question = unique_question("Tell #support that the release is out")
    post = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": "The release is out."},
        "reason": "The requester asked to tell #support.",
    }
    claimed = {"answer": "I have posted the message in #support.", "citations": []}
    llm.script(plan(post), Reply(content=claimed), match=question)

    reply = wait_for_answer(stack.slack, mention(stack.slack, question).message.ts)

    assert reply.text.startswith(WAITING_ANSWER)
    assert "I have posted" not in reply.text and "Waiting for approval" in reply.text


def test_a_reply_that_promises_an_action_no_call_made_gets_the_action_made(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    """A small model read what it was asked about and then wrote what it "will" do
    instead of calling the tool. Shown its own promise, it proposes the action, and the
    person reads that it waits for approval, not a promise nobody keeps."""
    word = f"osprey{new_marker(6)}"
    stack.slack.workspace.post_message(
        SUPPORT, user=APPROVER, text=f"The {word} rollout moved to Thursday"
    )
    question = unique_question(f"Look up when the {word} rollout is, then tell #support")
    promise = f"I will tell #support that the {word} rollout is on Thursday."
    post_call = {
        "name": "post_to_channel",
        "arguments": {"channel": SUPPORT, "text": f"The {word} rollout is on Thursday."},
        "reason": "The requester asked to tell #support.",
    }
    llm.script(
        plan(search(word)),
        Reply(content=NO_MORE_TOOLS),
        Reply(content={"answer": f"The rollout is on Thursday. {promise}", "citations": []}),
        plan(post_call),
        Reply(content={"answer": "The post to #support waits for approval.", "citations": []}),
        match=question,
    )

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)

    assert "waits for approval" in answer.text and "I will" not in answer.text
    proposed = db.execute(
        "SELECT payload->>'text' AS text FROM pending_actions WHERE payload->>'text' LIKE %s",
        (f"%{word}%",),
    ).fetchall()
    assert proposed == [{"text": f"The {word} rollout is on Thursday."}]
    told = llm.requests(match=question)[3]["messages"][-1]["content"]
    assert f'Your reply to the person said: "{promise}"' in told
    kinds = [s["kind"] for s in steps_of(db, post.message.ts)]
    assert kinds == [
        "plan", "retrieve", "act", "plan", "draft", "verify", "plan", "act", "draft", "verify"
    ]  # fmt: skip


def test_a_promise_is_followed_up_once_per_run(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    tenant: int,  # noqa: F811
) -> None:
    """Asked again and still calling nothing, the model's second draft is the reply: a
    run is not kept going by a model that keeps promising."""
    word = f"plover{new_marker(6)}"
    question = unique_question(f"Tell #support about the {word} outage")
    llm.script(
        plan(search(word)),
        Reply(content=NO_MORE_TOOLS),
        Reply(content={"answer": f"I will tell #support about {word}.", "citations": []}),
        Reply(content=NO_MORE_TOOLS),
        Reply(content={"answer": f"I'll post about {word} in #support.", "citations": []}),
        match=question,
    )

    post = mention(stack.slack, question)
    answer = wait_for_answer(stack.slack, post.message.ts)

    assert f"I'll post about {word} in #support." in answer.text
    assert len(llm.requests(match=question)) == 5
