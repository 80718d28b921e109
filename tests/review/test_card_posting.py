"""An action's approval card is posted once, whoever posts it: the run that proposed the
action and the sweep that posts the cards of actions still without one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connectors.slack.web_client import make_web_client
from core.db import open_pool
from review import tenant_settings
from review.slack_posts import post_approval_request
from sandbox.openai_emulator import OpenAIEmulator
from tests.review.conftest import APPROVALS, DB, action_row, propose_post
from tests.support.stack import Stack


def cards_of(stack: Stack, action_id: int) -> list[str]:
    """The ts of every approval card in the channel for the action."""
    return [
        m.ts
        for m in stack.slack.history(APPROVALS)
        if (m.metadata or {}).get("event_payload", {}).get("action_id") == action_id
    ]


def test_two_workers_posting_one_actions_card_at_once_post_one_card(
    stack: Stack, llm: OpenAIEmulator, db: DB, tenant: int, database_url: str
) -> None:
    """Both read the action without a card; the first's post is slow to answer. The
    second does not post another (in the sandbox the run and the sweep posted two cards
    5 ms apart, and the approver saw the request twice); the card saved is the one posted."""
    proposal = propose_post(stack.slack, llm, db, "Maintenance at 22:00 tonight.")
    action_id = proposal.action["id"]
    # As if the card had not been posted yet: the action as both workers read it.
    db.execute(
        """UPDATE pending_actions SET approval_ts = NULL, approval_intent_at = NULL
            WHERE id = %s""",
        (action_id,),
    )
    stack.slack.workspace.delete_message(APPROVALS, proposal.action["approval_ts"])
    unposted = action_row(db, action_id)
    settings = tenant_settings.load(db, tenant)  # type: ignore[arg-type]
    client = make_web_client(stack.slack.bot_token, stack.slack.api_url)
    stack.slack.delay_response("chat.postMessage", 1.5)  # the first post, slow to answer

    pool = open_pool(database_url, max_size=2)
    try:

        def post(after: float) -> str | None:
            time.sleep(after)
            with pool.connection() as conn:
                row: dict[str, Any] = dict(unposted)
                return post_approval_request(conn, client, settings, row)

        with ThreadPoolExecutor(max_workers=2) as workers:
            first, second = workers.submit(post, 0.0), workers.submit(post, 0.5)
            posted = [first.result(timeout=30), second.result(timeout=30)]
    finally:
        pool.close()

    cards = cards_of(stack, action_id)
    assert len(cards) == 1, cards
    assert action_row(db, action_id)["approval_ts"] == cards[0]
    # A worker that found another posting says so with None (the sweep may be the other).
    assert set(posted) <= {None, cards[0]}
