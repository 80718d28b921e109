"""The dashboard's quality row counts real events: an answer (and a "not found") and a 👍
through the running listener and worker, a rejection and an edit on an approval card, each
under the agent template of the run, as `/metrics` shows it."""

from __future__ import annotations

from core.metrics import template_label
from rag.citations import NOT_FOUND_ANSWER
from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.bot.intake.test_feedback_listeners import answered, click_rating, run_of
from tests.bot.observability.test_metrics_endpoints import Samples, scrape, value
from tests.review.conftest import (
    APPROVALS,
    APPROVER,
    DB,
    action_row,
    propose_post,
    wait_for_status,
)
from tests.support.processes import wait_for
from tests.support.stack import Stack


def _template(db: DB, run_id: int) -> str:
    row = db.execute("SELECT template_name FROM agent_runs WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    return template_label(row["template_name"])


def _moved(url: str, before: Samples, name: str, by: float = 1, **labels: str) -> Samples:
    """Wait until the series has moved by `by` from `before` (a worker counts just after
    the reply is written); fail if it moves further."""
    start = value(before, name, **labels)

    def moved() -> Samples | None:
        samples = scrape(url)
        return samples if value(samples, name, **labels) >= start + by else None

    after: Samples = wait_for(moved, message=f"{name} {labels} to move by {by}")
    assert value(after, name, **labels) == start + by, (name, labels)
    return after


def test_an_answer_and_its_thumbs_up_are_counted_under_the_template(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """The worker counts the answer, the listener the 👍; a second click on 👍 is the same
    rating and counts nothing more. A "not found" answer is counted as one."""
    worker_before = scrape(stack.worker_metrics_url)
    listener_before = scrape(stack.listener_metrics_url)

    reply = answered(stack, llm, answer="Turn it off and on again.")
    template = _template(db, run_of(db, reply))
    _moved(
        stack.worker_metrics_url,
        worker_before,
        "chatops_answers_total",
        template=template,
        outcome="answered",
    )

    click_rating(stack, reply, "positive")
    after = _moved(
        stack.listener_metrics_url,
        listener_before,
        "chatops_answer_ratings_total",
        template=template,
        rating="up",
    )
    click_rating(stack, reply, "positive")
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM answer_ratings WHERE run_id = %s AND rating = 'up'",
            (run_of(db, reply),),
        ).fetchone()
    )
    again = scrape(stack.listener_metrics_url)
    assert value(again, "chatops_answer_ratings_total", template=template, rating="up") == value(
        after, "chatops_answer_ratings_total", template=template, rating="up"
    )
    assert value(again, "chatops_answer_ratings_total", template=template, rating="down") == value(
        listener_before, "chatops_answer_ratings_total", template=template, rating="down"
    )

    worker_before = scrape(stack.worker_metrics_url)
    answered(stack, llm, answer=NOT_FOUND_ANSWER)
    _moved(
        stack.worker_metrics_url,
        worker_before,
        "chatops_answers_total",
        template=template,
        outcome="not_found",
    )


def test_a_rejection_and_an_edit_are_counted_under_the_template(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int
) -> None:
    """Rejecting with the card's button counts a rejection; an approver's edit counts an
    edit, and the approval that follows counts an approval."""
    before = scrape(stack.worker_metrics_url)
    rejected = propose_post(stack.slack, llm, db, f"Free pizza for all ({new_marker(6)})")
    template = _template(db, rejected.action["run_id"])
    stack.slack.click_button(APPROVER, APPROVALS, rejected.approval.ts, "review_reject")
    view = wait_for(lambda: stack.slack.last_view(APPROVER), message="the reject modal")
    stack.slack.submit_view(APPROVER, view.id, {"reject_reason": {"text": "Not true."}})
    wait_for_status(db, rejected.action["id"], "rejected")
    after_reject = _moved(
        stack.worker_metrics_url,
        before,
        "chatops_approval_decisions_total",
        template=template,
        decision="rejected",
    )
    assert value(
        after_reject, "chatops_approval_decisions_total", template=template, decision="approved"
    ) == value(before, "chatops_approval_decisions_total", template=template, decision="approved")

    edited = propose_post(stack.slack, llm, db, f"Standup moves to 10am ({new_marker(6)})")
    stack.slack.react_as_user(APPROVER, APPROVALS, edited.approval.ts, "pencil2")
    wait_for(lambda: action_row(db, edited.action["id"])["edit_requested_by"] == APPROVER)
    stack.slack.post_as_user(
        APPROVER, APPROVALS, "Standup moves to 10:30am.", thread_ts=edited.approval.ts
    )
    after_edit = _moved(
        stack.worker_metrics_url,
        after_reject,
        "chatops_approval_edits_total",
        template=template,
    )
    stack.slack.react_as_user(APPROVER, APPROVALS, edited.approval.ts, "white_check_mark")
    wait_for_status(db, edited.action["id"], "executed")
    _moved(
        stack.worker_metrics_url,
        after_edit,
        "chatops_approval_decisions_total",
        template=template,
        decision="approved",
    )
