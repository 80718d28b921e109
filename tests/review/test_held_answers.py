"""An answer the toxicity screen holds for review reaches the thread only after a person
approves it in the approval channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.agent.run_request import run_request
from bot.agent.runs import WorkerDeps
from core.db import open_pool
from guardrails.facade import build_guardrails
from guardrails.policy import TenantPolicy, ToxicityPolicy
from review.held_answers import HELD_NOTICE
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.markers import new_marker
from tests.bot.agent.test_run_request import stored_request
from tests.guardrails.conftest import settings_for
from tests.guardrails.tiny_model import build_tiny_classifier
from tests.review.conftest import APPROVALS, APPROVER, DB, wait_for_status
from tests.support.conversation import GENERAL, PLAN, bot_replies
from tests.support.processes import wait_for
from tests.support.stack import Stack
from tests.support.worker_deps import in_process_deps

RUDE_DRAFT = "I hate you, you worthless moron"


@pytest.fixture
def toxic_deps(
    stack: Stack, llm: OpenAIEmulator, database_url: str, tenant: int, tmp_path: Path
) -> Iterator[WorkerDeps]:
    """A worker's dependencies with the tiny toxicity model on and the tenant's policy
    set to send toxic drafts to review."""
    model = build_tiny_classifier(tmp_path)["toxicity"]
    pool = open_pool(database_url, max_size=2)
    guardrails = build_guardrails(
        settings_for(database_url, guardrails_toxicity_model=str(model)), pool
    )
    guardrails.policies.save(
        tenant, TenantPolicy(toxicity=ToxicityPolicy(action="review")), updated_by="test"
    )
    try:
        yield in_process_deps(stack, llm, pool, guardrails)
    finally:
        with pool.connection() as conn:
            conn.execute("DELETE FROM guardrail_policies WHERE tenant_id = %s", (tenant,))
        pool.close()


def test_a_held_answer_is_posted_in_its_thread_only_after_approval(
    stack: Stack, llm: OpenAIEmulator, db: DB, toxic_deps: WorkerDeps
) -> None:
    question = f"What did you think of my ticket? {new_marker(8)}"
    llm.script(
        Reply(content=PLAN), Reply(content={"answer": RUDE_DRAFT, "citations": []}), match=question
    )
    request_id, thread = stored_request(db, stack, question)

    run_request(toxic_deps, request_id)

    # The requester is told a person is checking the answer; the answer itself is not there.
    replies = [m.text for m in bot_replies(stack.slack, thread["ts"])]
    assert len(replies) == 1 and replies[0].startswith(HELD_NOTICE)
    action = wait_for(
        lambda: db.execute(
            "SELECT * FROM pending_actions WHERE tool = 'reply_in_thread'"
            " AND payload->>'thread_ts' = %s AND approval_ts IS NOT NULL",
            (thread["ts"],),
        ).fetchone()
    )
    assert any("toxic" in flag.lower() for flag in action["flags"])
    card = stack.slack.workspace.message(APPROVALS, action["approval_ts"])
    assert RUDE_DRAFT in str(card.blocks)

    # When an approver says yes, the answer appears in the thread, once.
    stack.slack.react_as_user(APPROVER, APPROVALS, action["approval_ts"], "white_check_mark")
    done = wait_for_status(db, action["id"], "executed", timeout=30)
    posted = [m for m in stack.slack.thread(GENERAL, thread["ts"]) if m.text == RUDE_DRAFT]
    assert len(posted) == 1
    # The platform proposed it, not the model's plan: no run resumes from it.
    assert done["resume_due_at"] is None
