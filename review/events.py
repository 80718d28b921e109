"""The worker job for review requests: a stored reaction, button, edit or reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import structlog
from slack_sdk import WebClient

from connectors.email.flood_gate import FloodLimits
from connectors.slack.bot_tokens import with_bot_token
from core.metrics import Metrics
from core.store import requests
from review import actions, feedback, resumes, tenant_settings
from review.answer_feedback import feedback_summary_now
from review.decisions import apply_decision, decision_from_request
from review.email_digest import RELEASE_KIND, release_digest
from review.golden_candidates import Mask
from review.golden_cases import GOLDEN_KIND, handle_click

log = structlog.get_logger(__name__)


def handle_review_request(
    conn: actions.Conn,
    client_for: Callable[[str], WebClient],
    enqueue_execution: Callable[[int], None],
    request_id: int,
    enqueue_request: Callable[[int], None] = lambda request_id: None,
    flood: FloodLimits | None = None,
    enqueue_resume: resumes.Send | None = None,
    metrics: Metrics | None = None,
    mask: Mask | None = None,
) -> None:
    """``enqueue_resume`` sends the job that continues the run whose action this decision
    rejected (or ran, when approval executes it in this job): review/resumes.py.
    ``metrics`` counts approvals, rejections and edits by template. ``mask`` hides personal
    data in a golden-set candidate (default: the guardrails' PII redactor, loaded here)."""
    request = with_bot_token(requests.in_installed_workspace(conn, request_id))
    if request is None or requests.is_finished(request["status"]):
        return
    tenant_id = request["tenant_id"]
    if request["kind"] == GOLDEN_KIND:
        handle_click(conn, request, mask=mask or _pii_mask(), summary=feedback_summary_now)
        _finish(conn, request_id, "done")
        return
    if request["kind"] == RELEASE_KIND:
        _release(conn, client_for(request["bot_token"]), request, enqueue_request, flood)
        _finish(conn, request_id, "done")
        return
    decision = decision_from_request(
        conn, tenant_id, request["kind"], request["payload"], request["received_at"]
    )
    if decision is None:
        _finish(conn, request_id, "ignored")
        return
    settings = tenant_settings.load(conn, tenant_id)
    outcome = apply_decision(
        conn, client_for(request["bot_token"]), settings, decision, enqueue_execution
    )
    log.info("review.decided", action_id=decision.action["id"], verb=decision.verb)
    if outcome is not None and metrics is not None:
        template = feedback.template_of(conn, tenant_id, decision.action["id"])
        metrics.count_decision(template, outcome)
    if enqueue_resume is not None:
        resumes.send_if_due(conn, tenant_id, decision.action["id"], enqueue_resume)
    _finish(conn, request_id, "done")


def _pii_mask() -> Mask:
    """What `chatops golden from-feedback` masks with, for a caller that has no redactor."""
    from core.warmup import Warming
    from guardrails.pii import build_detector
    from guardrails.redaction import Redactor

    redactor = Redactor(Warming.loaded("the personal-data detector", build_detector()))
    return lambda text: redactor.redact(text).text


def _release(
    conn: actions.Conn,
    client: WebClient,
    request: dict[str, Any],
    enqueue_request: Callable[[int], None],
    flood: FloodLimits | None,
) -> None:
    payload = request["payload"]
    user = payload.get("user") or {}
    release_digest(
        conn,
        client,
        tenant_id=request["tenant_id"],
        digest_id=int(payload["actions"][0]["value"]),
        user=str(user.get("id") or ""),
        user_team=str(user["team_id"]) if user.get("team_id") else None,
        channel=(payload.get("channel") or {}).get("id"),
        limits=flood or FloodLimits(),
        enqueue_request=enqueue_request,
    )


def _finish(conn: actions.Conn, request_id: int, status: Literal["done", "ignored"]) -> None:
    requests.finish(conn, request_id, status)
