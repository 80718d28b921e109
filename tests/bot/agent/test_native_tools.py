"""The Plan turn through the chat API's native tools / tool_calls (LLM_TOOL_CALLING), and
the "auto" step down to JSON-schema turns for a model that writes its plan as text.

Runs in-process (a worker with its own tool-calling setting) against real Postgres, the
Slack emulator with the real Slack tools, the approvals flow and the LLM emulator, which
answers with tool_calls where a test scripts them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.agent.native_tools import NOT_MADE_AGAIN, SEARCH_TOOL
from bot.agent.run_request import WorkerDeps, run_request
from connectors.slack.read_tools import slack_read_tools
from connectors.slack.tools import post_to_channel_tool
from core.db import Pool, open_pool
from core.llm.structured import PROBE_TOOL, StructuredLLM, ToolCalling
from core.tools import ToolRegistry
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Failure, Refusal, Reply, ToolCall
from sandbox.slack_search import issue_action_token
from testbed.markers import new_marker
from tests.bot.agent.test_run_request import guardrails_for
from tests.review.conftest import APPROVER, DB, SUPPORT, tenant  # noqa: F401
from tests.support.conversation import bot_replies
from tests.support.stack import Stack
from tests.support.stored_mentions import store_mention
from tests.support.worker_deps import in_process_deps

DRAFT_WAITS = {"answer": "The post to #support waits for approval.", "citations": []}


@pytest.fixture
def pool(database_url: str) -> Iterator[Pool]:
    opened = open_pool(database_url, max_size=2)
    yield opened
    opened.close()


@dataclass(frozen=True)
class Scene:
    """What every test here works with: the emulators, the database and one tenant."""

    stack: Stack
    llm: OpenAIEmulator
    db: DB
    pool: Pool
    database_url: str
    tenant: int

    def worker(self, tool_calling: ToolCalling) -> WorkerDeps:
        """A worker with the Slack tools, the emulator as its model and ``tool_calling``;
        its own provider chain (`in_process_deps` builds one each time), so what it learns
        about the model starts from nothing."""
        guardrails = guardrails_for(self.database_url, self.pool)
        deps = in_process_deps(self.stack, self.llm, self.pool, guardrails, max_steps=12)
        assert deps.llm is not None
        return replace(
            deps,
            llm=StructuredLLM(deps.llm.chain, 0, tool_calling=tool_calling),
            tools=ToolRegistry.of(
                post_to_channel_tool(deps.slack_client), *slack_read_tools(deps.slack_client)
            ),
        )

    def ask(self, question: str) -> tuple[int, str]:
        """A mention in #general, stored as the listener stores it (with Slack's action
        token, which Slack search needs), for running in this process."""
        slack = self.stack.slack
        stored = store_mention(
            self.db,
            self.stack,
            f"<@{slack.bot_user_id}> {question}",
            tenant_id=self.tenant,
            event_fields={"action_token": issue_action_token(slack.workspace)},
        )
        return stored.request_id, stored.ts


@pytest.fixture
def scene(
    stack: Stack,
    llm: OpenAIEmulator,
    db: DB,
    pool: Pool,
    database_url: str,
    tenant: int,  # noqa: F811
) -> Scene:
    return Scene(stack, llm, db, pool, database_url, tenant)


def steps_of(db: DB, request_id: int) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT s.kind, s.output FROM agent_steps s JOIN agent_runs r ON r.id = s.run_id
           WHERE r.request_id = %s ORDER BY s.position""",
        (request_id,),
    ).fetchall()


def proposed(db: DB, like: str) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT tool, payload->>'text' AS text, reason FROM pending_actions
           WHERE payload->>'text' LIKE %s ORDER BY id""",
        (like,),
    ).fetchall()


def test_native_tool_calls_read_then_propose_an_action_once(scene: Scene) -> None:
    """With native tools the model searches the knowledge base and Slack, sees the Slack
    result as a tool message, proposes a post, and repeats it in its next turn with new
    wording beside a new search: the post waits for approval once, the repeat is told it
    was not made, and the run's steps are those of a JSON-schema run."""
    word = f"zephyr{new_marker(6)}"
    scene.stack.slack.workspace.post_message(
        SUPPORT, user=APPROVER, text=f"The {word} rollout moved to Thursday"
    )
    question = f"Look up the {word} rollout date in Slack, then tell #support"

    def post(text: str) -> ToolCall:
        reason = "The requester asked to tell #support."
        return ToolCall("post_to_channel", {"channel": SUPPORT, "text": text, "reason": reason})

    scene.llm.script(
        Reply(
            tool_calls=[
                ToolCall(SEARCH_TOOL, {"query": f"{word} rollout"}),
                ToolCall("slack_search_messages", {"query": word}),
            ]
        ),
        Reply(
            tool_calls=[
                ToolCall("slack_search_messages", {"query": f"{word} date"}),
                post(f"Reminder: the {word} rollout is on Thursday"),
            ]
        ),
        Reply(
            tool_calls=[
                ToolCall("slack_search_messages", {"query": f"{word} Thursday"}),
                post(f"Reminder again: the {word} rollout is on Thursday"),
            ],
        ),
        Reply(content="I have what I need."),
        Reply(content=DRAFT_WAITS),
        match=question,
    )
    request_id, ts = scene.ask(question)

    run_request(scene.worker("native"), request_id)

    # The person is told the post waits for approval; it was proposed once, with the
    # reason the model gave for the approver
    assert "Waiting for approval" in bot_replies(scene.stack.slack, ts)[-1].text
    assert proposed(scene.db, f"Reminder%{word}%") == [
        {
            "tool": "post_to_channel",
            "text": f"Reminder: the {word} rollout is on Thursday",
            "reason": "The requester asked to tell #support.",
        }
    ]
    first, second, third, fourth, draft = scene.llm.requests(match=question)
    # The tools went in the request's tools, knowledge search among them, not in a schema
    offered = [tool["function"]["name"] for tool in first["tools"]]
    assert offered[0] == SEARCH_TOOL and {"slack_search_messages", "post_to_channel"} <= set(
        offered
    )
    assert "response_format" not in first
    # The second turn: one system message, the question, the model's own call turn, then
    # one tool message per call, answered by id (the Slack result in its own)
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    calls = second["messages"][2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [SEARCH_TOOL, "slack_search_messages"]
    results = second["messages"][3:]
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert "moved to Thursday" in results[1]["content"]
    assert "moved to Thursday" not in json.dumps(first["messages"])
    # The third turn hears the post is waiting for approval; the fourth, that its repeat
    # was not made again
    assert "Waiting for approval, not done yet" in third["messages"][-1]["content"]
    assert [m["role"] for m in fourth["messages"]][-3:] == ["assistant", "tool", "tool"]
    assert fourth["messages"][-1]["content"] == NOT_MADE_AGAIN
    # The draft is a JSON-schema turn as before, and heard the results
    assert draft["response_format"]["json_schema"]["name"] == "Draft"
    assert "Waiting for approval, not done yet" in draft["messages"][-1]["content"]
    steps = steps_of(scene.db, request_id)
    assert [s["kind"] for s in steps] == [
        "plan",
        "retrieve",
        "act",
        "plan",
        "act",
        "plan",
        "act",
        "plan",
        "draft",
        "verify",
    ]
    plans = [s["output"] for s in steps if s["kind"] == "plan"]
    assert [p["tool_calling"] for p in plans] == ["native"] * 4
    assert plans[0]["search_queries"] == [f"{word} rollout"]
    assert all(p["prompt_tokens"] > 0 for p in plans)


def test_native_arguments_a_tool_rejects_are_sent_back_as_tool_results(scene: Scene) -> None:
    """A native call whose arguments its tool rejects is answered with a tool message
    saying what was wrong, and the corrected call is the one proposed."""
    marker = new_marker(8)
    question = f"Tell #support the release moved {marker}"
    scene.llm.script(
        # No text: post_to_channel requires one.
        Reply(tool_calls=[ToolCall("post_to_channel", {"channel": SUPPORT})]),
        Reply(
            tool_calls=[
                ToolCall(
                    "post_to_channel",
                    {"channel": SUPPORT, "text": f"The release moved {marker}", "reason": "asked"},
                )
            ]
        ),
        Reply(content=DRAFT_WAITS),
        match=question,
    )
    request_id, ts = scene.ask(question)

    run_request(scene.worker("native"), request_id)

    assert "Waiting for approval" in bot_replies(scene.stack.slack, ts)[-1].text
    assert [a["text"] for a in proposed(scene.db, f"%{marker}")] == [f"The release moved {marker}"]
    _first, again, _draft = scene.llm.requests(match=question)
    told = again["messages"][-1]
    assert (
        told["role"] == "tool"
        and told["tool_call_id"] == again["messages"][-2]["tool_calls"][0]["id"]
    )
    assert "invalid arguments for post_to_channel" in told["content"]


PLAN_AS_TEXT = "```json\n{}\n```"


def test_auto_asks_the_model_once_and_gives_json_turns_to_one_that_writes_calls_as_text(
    scene: Scene,
) -> None:
    """Before its first Plan turn, "auto" tells the model plainly to call a tool. One
    that writes the call as a fenced JSON block instead (Qwen2.5 1.5B on llama-server
    does; asked a question with tools on offer it answers in prose, calling nothing) gets
    JSON-schema turns: every Plan turn of the process is one, and it is asked once."""
    marker = new_marker(8)
    question = f"What is our refund window? {marker}"
    later = f"And for software? {marker}"
    plan = {"intent": "answer", "search_queries": [f"refund window {marker}"], "tool_calls": []}
    nothing = {"answer": "I couldn't find this in the knowledge base.", "citations": []}
    call_as_text = PLAN_AS_TEXT.format(json.dumps({"name": "record_number", "arguments": {}}))
    scene.llm.script(Reply(content=call_as_text), match=PROBE_TOOL.name)
    scene.llm.script(Reply(content=plan), Reply(content=nothing), match=question)
    scene.llm.script(Reply(content=plan), Reply(content=nothing), match=later)
    deps = scene.worker("auto")

    first_id, first_ts = scene.ask(question)
    run_request(deps, first_id)
    later_id, later_ts = scene.ask(later)
    run_request(deps, later_id)

    (probe,) = scene.llm.requests(match=PROBE_TOOL.name)
    assert [t["function"]["name"] for t in probe["tools"]] == [PROBE_TOOL.name]
    for asked, request_id, ts in ((question, first_id, first_ts), (later, later_id, later_ts)):
        (as_json, _draft) = scene.llm.requests(match=asked)
        assert "tools" not in as_json
        assert as_json["response_format"]["json_schema"]["name"] == "Plan"
        first_plan = steps_of(scene.db, request_id)[0]["output"]
        assert first_plan["tool_calling"] == "json"
        assert first_plan["search_queries"] == [f"refund window {marker}"]
        assert bot_replies(scene.stack.slack, ts)[-1].text.startswith("I couldn't find")


def test_auto_keeps_native_turns_for_a_model_that_calls_the_tool(scene: Scene) -> None:
    """A model that calls the tool it is told to call keeps native tool turns."""
    marker = new_marker(8)
    question = f"What is our refund window? {marker}"
    nothing = {"answer": "I couldn't find this in the knowledge base.", "citations": []}
    scene.llm.script(
        Reply(tool_calls=[ToolCall(PROBE_TOOL.name, {"number": 7})]),
        match=PROBE_TOOL.name,
    )
    scene.llm.script(Reply(content="I will look this up."), Reply(content=nothing), match=question)
    request_id, ts = scene.ask(question)

    run_request(scene.worker("auto"), request_id)

    (native, _draft) = scene.llm.requests(match=question)
    assert native["tools"] and "response_format" not in native
    assert steps_of(scene.db, request_id)[0]["output"]["tool_calling"] == "native"
    assert bot_replies(scene.stack.slack, ts)[-1].text.startswith("I couldn't find")


def test_auto_steps_down_when_the_server_refuses_tools(scene: Scene) -> None:
    """A server that answers 400 to a request with tools: the first time "auto" offers
    tools (its one-off check of the model) it asks again at once without them, and every
    Plan turn after is a JSON-schema turn, whose calls are made."""
    word = f"quokka{new_marker(6)}"
    scene.stack.slack.workspace.post_message(SUPPORT, user=APPROVER, text=f"The {word} deal closed")
    question = f"What happened to the {word} deal?"
    scene.llm.refuse(
        Refusal("m", "tools", None, Failure(400, "tools are not supported by this model"))
    )
    scene.llm.script(Reply(content="I recorded 7."), match=PROBE_TOOL.name)
    search = {"name": "slack_search_messages", "arguments": {"query": word}, "reason": "Find it"}
    scene.llm.script(
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": [search]}),
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": []}),
        Reply(content={"answer": f"The {word} deal closed.", "citations": []}),
        match=question,
    )
    request_id, ts = scene.ask(question)

    run_request(scene.worker("auto"), request_id)

    assert bot_replies(scene.stack.slack, ts)[-1].text == f"The {word} deal closed."
    refused, asked_again = scene.llm.requests(match=PROBE_TOOL.name)
    assert refused["tools"] and "tools" not in asked_again
    first_plan, next_plan, _draft = scene.llm.requests(match=question)
    for plan in (first_plan, next_plan):
        assert "tools" not in plan
        assert plan["response_format"]["json_schema"]["name"] == "Plan"
    assert "deal closed" in json.dumps(next_plan)
    kinds = [s["kind"] for s in steps_of(scene.db, request_id)]
    assert kinds == ["plan", "retrieve", "act", "plan", "draft", "verify"]
