"""The worker job for review requests: a stored reaction, button, edit or reply."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from slack_sdk import WebClient

from bot.intake.bot_tokens import with_bot_token
from review import actions, tenant_settings
from review.decisions import apply_decision, decision_from_request

log = structlog.get_logger(__name__)


def handle_review_request(
    conn: actions.Conn,
    client_for: Callable[[str], WebClient],
    enqueue_execution: Callable[[int], None],
    request_id: int,
) -> None:
    request = conn.execute(
        """SELECT r.*, i.bot_token, i.bot_token_sealed FROM inbound_requests r
           JOIN slack_installations i ON i.tenant_id = r.tenant_id WHERE r.id = %s""",
        (request_id,),
    ).fetchone()
    request = with_bot_token(request)
    if request is None or request["status"] in ("done", "ignored", "failed"):
        return
    tenant_id = request["tenant_id"]
    decision = decision_from_request(conn, tenant_id, request["kind"], request["payload"])
    if decision is None:
        _finish(conn, request_id, "ignored")
        return
    settings = tenant_settings.load(conn, tenant_id)
    apply_decision(conn, client_for(request["bot_token"]), settings, decision, enqueue_execution)
    log.info("review.decided", action_id=decision.action["id"], verb=decision.verb)
    _finish(conn, request_id, "done")


def _finish(conn: actions.Conn, request_id: int, status: str) -> None:
    conn.execute(
        "UPDATE inbound_requests SET status = %s, finished_at = now() WHERE id = %s",
        (status, request_id),
    )
