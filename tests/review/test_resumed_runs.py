"""A run resumes when the action it proposed is decided (issue 15).

Real serve and worker processes, Postgres, Redis, the Slack emulator and the scripted
LLM emulator: the requester asks, the approver decides with a reaction or the Reject
button's form, and the thread reads as one conversation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from bot.agent.resume import resume_run
from core.db import open_pool
from guardrails.facade import build_guardrails
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_workspace import Message
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.guardrails.conftest import settings_for
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    SUPPORT,
    posts_in_support,
    thread_texts,
    wait_for_status,
)
from tests.support.conversation import bot_replies, mention, unique_question, wait_for_answer
from tests.support.processes import wait_for
from tests.support.stack import Stack
from tests.support.worker_deps import in_process_deps

QUIET = 3.0  # seconds we watch for something that must not happen
HELD = 20.0  # seconds Slack's answer to the resumed reply is held, to kill the worker meanwhile
WAITING = "Waiting for approval"


def unique(text: str) -> str:
    return f"{text} ({new_marker(6)})"


def plan_posting(text: str, channel: str = SUPPORT) -> Reply:
    call = {
        "name": "post_to_channel",
        "arguments": {"channel": channel, "text": text},
        "reason": "The requester asked for it.",
    }
    return Reply(content=plan_calling(call))


def plan(intent: str = "answer") -> Reply:
    return Reply(content={"intent": intent, "search_queries": [], "tool_calls": []})


def draft(answer: str) -> Reply:
    return Reply(content={"answer": answer, "citations": []})


@dataclass(frozen=True)
class Asked:
    question: str
    thread_ts: str
    event_id: str


def ask(slack: SlackEmulator, llm: OpenAIEmulator, topic: str, *replies: Reply) -> Asked:
    """Mention the bot with a fresh question; ``replies`` script every model call of the
    conversation in order: each resumed run's requests carry the same question."""
    question = unique_question(topic)
    llm.script(*replies, match=question)
    post = mention(slack, question)
    answer = wait_for_answer(slack, post.message.ts)
    assert WAITING in answer.text
    return Asked(question, post.message.ts, post.deliveries[0].event_id)


def card_of(
    db: DB, slack: SlackEmulator, asked: Asked, text: str
) -> tuple[dict[str, Any], Message]:
    """The pending action of this conversation that posts ``text``, once its card is up."""
    action = wait_for(
        lambda: db.execute(
            """SELECT a.* FROM pending_actions a JOIN agent_runs r ON r.id = a.run_id
               JOIN inbound_requests q ON q.id = r.request_id
               WHERE q.external_id = %s AND a.payload->>'text' = %s
                 AND a.approval_ts IS NOT NULL""",
            (asked.event_id, text),
        ).fetchone(),
        message=f"the card for {text!r}",
    )
    return action, slack.workspace.message(APPROVALS, action["approval_ts"])


def resumed_runs(db: DB, asked: Asked) -> list[dict[str, Any]]:
    return db.execute(
        """SELECT r.* FROM agent_runs r JOIN inbound_requests q ON q.id = r.request_id
           WHERE q.external_id = %s AND r.resumes_action_id IS NOT NULL ORDER BY r.id""",
        (asked.event_id,),
    ).fetchall()


def finished_resume(db: DB, action_id: int) -> dict[str, Any]:
    run: dict[str, Any] = wait_for(
        lambda: db.execute(
            "SELECT * FROM agent_runs WHERE resumes_action_id = %s AND status <> 'running'",
            (action_id,),
        ).fetchone(),
        timeout=30,
        message=f"the run resumed after action {action_id}",
    )
    return run


def reject_with_reason(slack: SlackEmulator, card: Message, reason: str) -> None:
    slack.click_button(APPROVER, APPROVALS, card.ts, "review_reject")
    view = wait_for(lambda: slack.last_view(APPROVER), message="the reject form")
    slack.submit_view(APPROVER, view.id, {"reject_reason": {"text": reason}})


def test_an_approved_step_of_a_chain_leads_to_the_next_one(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Asked for two posts, the agent proposes the first; once it is approved and done, the
    run resumes, proposes the second (a card of its own) and says so in the thread. Once
    the second is done there is nothing left: the thread gets the outcome notice only."""
    first, second = unique("Release 4.2 is out."), unique("Release notes are on the wiki.")
    asked = ask(
        stack.slack,
        llm,
        "Announce the release in #support, then post where the notes are",
        plan_posting(first),
        draft("I'll post the announcement once it is approved."),
        plan_posting(second),
        draft("The announcement is out; next I'll post where the notes are."),
        plan(),
        draft("Both posts are done."),
    )
    action, card = card_of(db, stack.slack, asked, first)

    stack.slack.react_as_user(APPROVER, APPROVALS, card.ts, "white_check_mark")

    wait_for_status(db, action["id"], "executed")
    next_action, next_card = card_of(db, stack.slack, asked, second)
    assert next_action["status"] == "pending" and posts_in_support(stack.slack, second) == []
    resumed = finished_resume(db, action["id"])
    assert resumed["status"] == "answered" and next_action["run_id"] == resumed["id"]
    reply = wait_for(
        lambda: next(
            (t for t in thread_texts(stack.slack, asked.thread_ts) if "next I'll post" in t), None
        ),
        message="the resumed run's reply",
    )
    assert WAITING in reply and f"<#{APPROVALS}>" in reply
    texts = thread_texts(stack.slack, asked.thread_ts)
    # The factual notice stays, before the resumed run's reply.
    notice = next(i for i, t in enumerate(texts) if "and done" in t)
    assert notice < texts.index(reply)
    # The model was told the outcome, as one conversation with the original request.
    told = llm.requests(match="was approved by a person and done")
    assert told and asked.question in str(told[0]["messages"])

    stack.slack.react_as_user(APPROVER, APPROVALS, next_card.ts, "white_check_mark")

    wait_for_status(db, next_action["id"], "executed")
    last = finished_resume(db, next_action["id"])
    assert last["status"] == "answered" and last["reply_ts"] is None
    time.sleep(QUIET)
    texts = thread_texts(stack.slack, asked.thread_ts)
    assert sum("and done" in t for t in texts) == 2
    assert not any("Both posts are done" in t for t in texts)
    assert len(posts_in_support(stack.slack, first)) == 1
    assert len(posts_in_support(stack.slack, second)) == 1


def test_a_rejection_with_a_reason_leads_to_a_corrected_proposal(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Rejected with a reason, the run resumes knowing the reason and proposes a corrected
    post, which again waits for approval; the thread hears both."""
    wrong = unique("Everyone gets a 50% discount today.")
    corrected = unique("Our spring offer is on the pricing page.")
    reason = unique("No discounts without finance sign-off")
    asked = ask(
        stack.slack,
        llm,
        "Tell #support about the spring offer",
        plan_posting(wrong),
        draft("I'll post that once it is approved."),
        plan_posting(corrected),
        draft("I proposed a post without the discount instead."),
    )
    action, card = card_of(db, stack.slack, asked, wrong)

    reject_with_reason(stack.slack, card, reason)

    wait_for_status(db, action["id"], "rejected")
    fixed, _ = card_of(db, stack.slack, asked, corrected)
    assert fixed["status"] == "pending"
    told = llm.requests(match=f"was rejected by a person: {reason}")
    assert told, "the model was told the rejection and its reason"
    reply = wait_for(
        lambda: next(
            (t for t in thread_texts(stack.slack, asked.thread_ts) if "without the discount" in t),
            None,
        ),
        message="the resumed run's reply",
    )
    assert WAITING in reply
    texts = thread_texts(stack.slack, asked.thread_ts)
    assert any("rejected" in t and reason in t for t in texts)
    assert posts_in_support(stack.slack, wrong) == []


def test_a_rejection_the_model_accepts_adds_nothing_to_the_thread(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """When the resumed run only acknowledges the rejection (no tool, no question, no
    source), the thread keeps the rejection notice alone."""
    text = unique("Office party on Friday!")
    reason = unique("HR announces this, not us")
    asked = ask(
        stack.slack,
        llm,
        "Announce the office party in #support",
        plan_posting(text),
        draft("I'll post that once it is approved."),
        plan(),
        draft("Understood, I stopped: HR announces this."),
    )
    action, card = card_of(db, stack.slack, asked, text)

    reject_with_reason(stack.slack, card, reason)

    resumed = finished_resume(db, action["id"])
    assert resumed["status"] == "answered" and resumed["reply_ts"] is None
    time.sleep(QUIET)
    texts = thread_texts(stack.slack, asked.thread_ts)
    assert not any("I stopped" in t for t in texts)
    assert sum(reason in t for t in texts) == 1


def test_a_resumed_run_retried_after_a_crash_posts_once(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The worker dies after Slack took the resumed run's reply and before it heard back:
    the retried job replays the run's steps (no second model call) and finds the reply
    it posted, so the thread reads it once."""
    text = unique("Maintenance window tonight.")
    question_back = "Should I propose it for tomorrow night instead?"
    asked = ask(
        stack.slack,
        llm,
        "Announce tonight's maintenance in #support",
        plan_posting(text),
        draft("I'll post that once it is approved."),
        plan("clarify"),
        draft(question_back),
    )
    action, card = card_of(db, stack.slack, asked, text)
    reject_with_reason(stack.slack, card, "Tonight is too short notice")
    wait_for(
        lambda: any("too short notice" in t for t in thread_texts(stack.slack, asked.thread_ts)),
        message="the rejection notice",
    )
    # The notice is in; the next message posted is the resumed run's reply: held.
    stack.slack.delay_response("chat.postMessage", HELD)
    wait_for(
        lambda: any(question_back in t for t in thread_texts(stack.slack, asked.thread_ts)),
        message="the resumed reply reaching Slack",
    )
    stack.worker.kill()
    stack.start_worker()

    resumed = finished_resume(db, action["id"])
    assert resumed["status"] == "answered" and resumed["attempts"] == 2
    time.sleep(QUIET)
    replies = [m for m in bot_replies(stack.slack, asked.thread_ts) if question_back in m.text]
    assert len(replies) == 1 and replies[0].ts == resumed["reply_ts"]
    asked_again = [
        r
        for r in llm.requests(match="was rejected by a person")
        if r["response_format"]["json_schema"]["name"] == "Plan"
    ]
    assert len(asked_again) == 1


def test_a_reject_and_propose_again_loop_ends_at_the_resume_cap(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Each rejection resumes the run, which proposes again; after AGENT_MAX_RESUMES (3)
    resumes the next rejection ends the conversation: no fourth resumed run, no model call."""
    texts = [unique(f"Try {n}: the launch is on Monday.") for n in range(4)]
    replies: list[Reply] = [plan_posting(texts[0]), draft("I'll post that once it is approved.")]
    for n in range(1, 4):
        replies += [plan_posting(texts[n]), draft(f"I proposed version {n + 1} of the post.")]
    asked = ask(stack.slack, llm, "Announce the launch in #support", *replies)

    for n, text in enumerate(texts):
        action, card = card_of(db, stack.slack, asked, text)
        reject_with_reason(stack.slack, card, f"Not yet, round {n}")
        wait_for_status(db, action["id"], "rejected")
        if n < 3:
            finished_resume(db, action["id"])

    time.sleep(QUIET)
    runs = resumed_runs(db, asked)
    assert len(runs) == 3
    assert llm.requests(match="Not yet, round 3") == []
    assert llm.pending() == []
    texts_in_thread = thread_texts(stack.slack, asked.thread_ts)
    assert sum(WAITING in t for t in texts_in_thread) == 4  # the first answer and 3 resumes
    assert any("Not yet, round 3" in t for t in texts_in_thread)  # the notice still comes


def lost_hand_over(db: DB, action_id: int, reason: str, *, sent: bool) -> None:
    """The action rejected and due to resume, as the decision leaves it, with its resume
    job ``sent`` or lost (a worker killed between the decision and sending the job)."""
    db.execute(
        """UPDATE pending_actions SET status = 'rejected', decided_by = %s, decided_at = now(),
             reject_reason = %s, resume_due_at = now(),
             resume_queued_at = CASE WHEN %s THEN now() END
           WHERE id = %s""",
        (APPROVER, reason, sent, action_id),
    )


def test_a_resume_whose_job_was_lost_is_sent_by_the_sweep(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The decision marks the action due to resume in its own transaction; a resume job
    that was never sent is sent by the workers' periodic sweep, and the run resumes."""
    text = unique("Deploy freeze starts now.")
    question_back = "Which channel should the freeze notice go to instead?"
    asked = ask(
        stack.slack,
        llm,
        "Announce the deploy freeze in #support",
        plan_posting(text),
        draft("I'll post that once it is approved."),
        plan("clarify"),
        draft(question_back),
    )
    action, _ = card_of(db, stack.slack, asked, text)

    lost_hand_over(db, action["id"], "Wrong channel", sent=False)

    resumed = wait_for(
        lambda: db.execute(
            "SELECT * FROM agent_runs WHERE resumes_action_id = %s AND status = 'answered'",
            (action["id"],),
        ).fetchone(),
        timeout=60,
        message="the sweep to send the lost resume",
    )
    assert resumed["reply_ts"]
    wait_for(lambda: any(question_back in t for t in thread_texts(stack.slack, asked.thread_ts)))


def test_offline_a_decided_action_does_not_resume(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, database_url: str
) -> None:
    """Without a language model there is no run to continue: nothing is started."""
    text = unique("Offline resume check.")
    asked = ask(
        stack.slack,
        llm,
        "Announce the offline check in #support",
        plan_posting(text),
        draft("I'll post that once it is approved."),
        plan(),
        draft("Understood."),
    )
    action, _ = card_of(db, stack.slack, asked, text)
    lost_hand_over(db, action["id"], "Not now", sent=True)
    pool = open_pool(database_url, max_size=2)
    try:
        deps = in_process_deps(stack, llm, pool, build_guardrails(settings_for(database_url), pool))
        resume_run(replace(deps, llm=None), action["id"])
        assert resumed_runs(db, asked) == []
        # With the model, the same action does resume: offline was what stopped it.
        resume_run(deps, action["id"])
    finally:
        pool.close()
    assert [r["status"] for r in resumed_runs(db, asked)] == ["answered"]
