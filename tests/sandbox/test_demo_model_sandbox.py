"""`chatops sandbox` with no model configured uses its demo model: the README walkthrough works.

The sandbox runs as a child process exactly as a newcomer starts it, with no
OPENAI_BASE_URL, and is used through its page's own HTTP API (what the page's buttons
call): a mention asking to email a customer becomes an approval card, the approver's ✅
sends the mail to the outbox, and a question about the sample knowledge is answered with
a cited quote.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.conftest import RunningSandbox, sandbox_on_its_own_database
from tests.support.processes import wait_for

# Starting the sandbox (its first test) or waiting for the sample knowledge takes longer
# than the suite's default per-test limit on a busy machine.
pytestmark = pytest.mark.timeout(360)

REQUESTER, APPROVER = "U0REQUESTER", "U0APPROVER"
SUPPORT, APPROVALS = "C0SUPPORT", "C0APPROVALS"
CUSTOMER = "alice@customer.example"
AGENT_WORK = 90.0  # seconds: a worker through the whole pipeline on a busy machine
INGEST_WORK = 240.0  # seconds: the sample knowledge embedded on a busy machine
INGESTED_MARKER = "sample-knowledge.ingested"  # written in the data folder once ingested


@pytest.fixture(scope="module")
def demo_sandbox(
    postgres_server_url: str,
    redis_url: str,
    queue_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSandbox]:
    with sandbox_on_its_own_database(
        postgres_server_url,
        redis_url,
        f"{queue_namespace}-demo-model",
        tmp_path_factory.mktemp("demo-model-sandbox"),
        # No model configured, as on a newcomer's machine (empty counts as unset).
        {"OPENAI_BASE_URL": "", "OPENAI_API_KEY": "", "LLM_FALLBACK_PROVIDERS": ""},
    ) as running:
        yield running


def state(sandbox: RunningSandbox) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sandbox.url}/api/state", timeout=10) as response:
        body: dict[str, Any] = json.load(response)
        return body


def post(sandbox: RunningSandbox, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{sandbox.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["ok"] is True


def messages(sandbox: RunningSandbox, channel: str) -> list[dict[str, Any]]:
    [found] = [c for c in state(sandbox)["channels"] if c["id"] == channel]
    return list(found["messages"])


def shown(message: dict[str, Any]) -> str:
    """A message's text and blocks, as one string to search."""
    return str(message["text"]) + json.dumps(message.get("blocks") or [])


def thread_once(sandbox: RunningSandbox, channel: str, containing: str, until: str) -> str:
    """The replies under the first message containing `containing`, as one string, once
    they contain `until` (the reply streams in); empty until then."""
    for message in messages(sandbox, channel):
        if containing in message["text"]:
            replies = "\n".join(shown(reply) for reply in message["replies"])
            return replies if until in replies else ""
    return ""


def test_the_sandbox_says_it_started_the_demo_model(demo_sandbox: RunningSandbox) -> None:
    """Its output names the demo model and says it is not AI; it is not in offline mode."""
    log = demo_sandbox.log_text()
    assert "sandbox's demo model" in log and "not AI" in log
    assert "offline mode" not in log


def test_an_emailed_customer_gets_the_mail_once_the_approver_ticks_it(
    demo_sandbox: RunningSandbox,
) -> None:
    """Step 2 and 3 of the walkthrough with no model: the requested email waits in
    #approvals, ✅ sends it, and it is in the outbox, addressed to the customer."""
    post(
        demo_sandbox,
        "/api/messages",
        {
            "user": REQUESTER,
            "channel": SUPPORT,
            "text": f"@chatops please email {CUSTOMER} about her renewal",
        },
    )

    card = wait_for(
        lambda: next(
            (m for m in messages(demo_sandbox, APPROVALS) if "Your renewal" in shown(m)), None
        ),
        timeout=AGENT_WORK,
        message="the approval card in #approvals",
    )
    assert "Approval needed" in shown(card)
    reply = wait_for(
        lambda: thread_once(demo_sandbox, SUPPORT, "about her renewal", "waits for approval"),
        timeout=AGENT_WORK,
        message="the bot's reply in the requester's thread",
    )
    assert "demo model" in reply
    assert not state(demo_sandbox)["mail"]["outbox"]

    post(
        demo_sandbox,
        "/api/reactions",
        {"user": APPROVER, "channel": APPROVALS, "ts": card["ts"], "name": "white_check_mark"},
    )

    [sent] = wait_for(
        lambda: state(demo_sandbox)["mail"]["outbox"],
        timeout=AGENT_WORK,
        message="the approved email in the outbox",
    )
    assert CUSTOMER in sent["to"]  # the real address, restored after approval
    assert sent["subject"] == "Your renewal"
    assert "about your renewal" in sent["body"] and "demo model" in sent["body"]


def test_a_question_on_the_sample_knowledge_is_answered_with_a_cited_quote(
    demo_sandbox: RunningSandbox,
) -> None:
    """Step 1 with no model: the answer quotes the VPN note and lists it as its source."""
    wait_for(
        lambda: (demo_sandbox.log_path.parent / INGESTED_MARKER).exists(),
        timeout=INGEST_WORK,
        message="the sample knowledge to be ingested",
    )
    post(
        demo_sandbox,
        "/api/messages",
        {"user": REQUESTER, "channel": SUPPORT, "text": "@chatops how do I reset my VPN token?"},
    )

    answer = wait_for(
        lambda: thread_once(demo_sandbox, SUPPORT, "reset my VPN token", "Sources"),
        timeout=AGENT_WORK,
        message="the answer in the thread",
    )
    assert "not AI" in answer
    assert "Reset token" in answer and re.search(r"\[\d\]", answer)
    assert "Sources" in answer and "vpn" in answer.lower()


def test_a_thread_and_a_channel_are_summarised_by_the_demo_model(
    demo_sandbox: RunningSandbox,
) -> None:
    """Step 7 with no model: "summarise this thread" groups what was said, each item
    linking to its message; "what did I miss in #support since Monday?" in #general
    summarises the channel."""
    post(
        demo_sandbox,
        "/api/messages",
        {"user": REQUESTER, "channel": SUPPORT, "text": "Release plan for v2?"},
    )
    parent = next(m for m in messages(demo_sandbox, SUPPORT) if m["text"] == "Release plan for v2?")
    for user, text in (
        (APPROVER, "Let's ship on Tuesday."),
        (REQUESTER, "Agreed, Tuesday it is."),
        (APPROVER, "Who writes the release notes?"),
        (REQUESTER, "I'll write them tomorrow."),
        (REQUESTER, "@chatops summarise this thread"),
    ):
        post(
            demo_sandbox,
            "/api/messages",
            {"user": user, "channel": SUPPORT, "text": text, "thread_ts": parent["ts"]},
        )

    summary = wait_for(
        lambda: thread_once(demo_sandbox, SUPPORT, "Release plan for v2?", "Action items"),
        timeout=AGENT_WORK,
        message="the thread's summary",
    )
    assert "Summary of this thread" in summary and "not AI" in summary
    assert "Decisions" in summary and "ship on Tuesday" in summary
    assert "Open questions" in summary and "release notes" in summary
    assert "/archives/C0SUPPORT/p" in summary  # links to the messages

    post(
        demo_sandbox,
        "/api/messages",
        {
            "user": REQUESTER,
            "channel": "C0GENERAL",
            "text": "@chatops what did I miss in #support since Monday?",
        },
    )
    caught_up = wait_for(
        lambda: thread_once(demo_sandbox, "C0GENERAL", "what did I miss in", "messages read"),
        timeout=AGENT_WORK,
        message="the channel's summary",
    )
    assert "What happened in <#C0SUPPORT" in caught_up
    assert "ship on Tuesday" in caught_up  # said in a thread of the channel
