"""Running an approved action, exactly once.

The job claims the action (approved -> executing) before the external call and records
the result after it. If a worker dies in between, the retried job finds the action still
'executing' and asks the tool to reconcile (has this idempotency key already taken
effect?) instead of calling again; a tool that cannot tell is marked failed rather than
risk doing it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from slack_sdk import WebClient

from connectors.slack.bot_tokens import with_bot_token
from core.tools import ActionContext, ActionRefused, ToolRegistry
from guardrails.facade import Guardrails
from review import actions, effects, resumes, rules, tenant_settings
from review.messages import mrkdwn_safe, people_summary
from review.slack_posts import refresh_approval_message, tell_requester

log = structlog.get_logger(__name__)

LOCK_NAMESPACE = 0x61  # high bits of the advisory lock key for actions
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)


class ActionBusy(Exception):
    """Another worker is executing this action right now; Dramatiq retries later."""


def execute_action(
    conn: actions.Conn,
    client_for: Callable[[str], WebClient],
    registry: ToolRegistry,
    guardrails: Guardrails,
    action_id: int,
    resume: resumes.Send | None = None,
) -> None:
    """Run the approved action ``action_id`` once. ``resume`` sends the job that continues
    the run which proposed it, once it is done or failed (review/resumes.py); also when a
    retried job finds it decided already, so a crash before the hand-over loses nothing."""
    with _action_lock(conn, action_id):
        tenant_id = _execute_locked(conn, client_for, registry, guardrails, action_id)
        if resume is not None and tenant_id is not None:
            resumes.send_if_due(conn, tenant_id, action_id, resume)


def _execute_locked(
    conn: actions.Conn,
    client_for: Callable[[str], WebClient],
    registry: ToolRegistry,
    guardrails: Guardrails,
    action_id: int,
) -> int | None:
    """Claim and run the action; its tenant, or None when there is no such action."""
    row = conn.execute(
        """SELECT a.*, i.bot_token, i.bot_token_sealed FROM pending_actions a
           JOIN slack_installations i ON i.tenant_id = a.tenant_id WHERE a.id = %s""",
        (action_id,),
    ).fetchone()
    row = with_bot_token(row)
    if row is None:
        log.error("action.not_found", action_id=action_id)
        return None
    tenant_id: int = row["tenant_id"]
    client = client_for(row["bot_token"])
    settings = tenant_settings.load(conn, tenant_id)
    if row["status"] == "approved" and settings.paused:
        # Left approved; the sweeper queues it again once the tenant resumes.
        actions.set_fields(conn, row, queued_at=None)
        log.info("action.held_while_paused", action_id=action_id)
        return None
    resuming = row["status"] == "executing"
    if row["status"] == "approved":
        claimed = actions.transition(
            conn,
            row,
            to="executing",
            allowed_from=["approved"],
            actor="agent",
            audit_action="action.executing",
        )
        if claimed is None:
            return tenant_id
        row = {**claimed, "bot_token": row["bot_token"]}
    elif not resuming:
        return tenant_id  # executed, rejected, expired or failed: nothing to run
    _run(conn, client, registry, guardrails, row, resuming)
    return tenant_id


def _run(
    conn: actions.Conn,
    client: WebClient,
    registry: ToolRegistry,
    guardrails: Guardrails,
    row: dict[str, Any],
    resuming: bool,
) -> None:
    tool = registry.get(row["tool"])
    if tool is None:
        _fail(conn, client, row, f"the tool {row['tool']!r} is no longer available")
        return
    if row["shown_hash"] is not None and actions.shown_hash(row) != row["approved_hash"]:
        # Only the version an approver saw runs (an action proposed before approvals were
        # bound to versions has no hash, and none to compare).
        _fail(
            conn,
            client,
            row,
            "what would run is not the version that was approved, so it did not run; "
            "nothing was changed",
        )
        return
    # The stored payload holds placeholders for personal data; the real values come back
    # only now, for the approved call, after the tenant's tool policy says yes again.
    checked = guardrails.check_tool(
        row["tenant_id"], str(row["conversation_id"]), row["tool"], row["payload"], channel=None
    )
    if not checked.decision.allowed:
        _fail(conn, client, row, checked.decision.reason_for_people)
        return
    arguments = tool.arguments.model_validate(checked.arguments)
    context = ActionContext(row["tenant_id"], row["bot_token"], row["requested_by"])
    key = row["idempotency_key"]
    refusal = tool.check(context, arguments) if tool.check else None
    if refusal is not None:
        _fail(conn, client, row, refusal)
        return
    if not resuming:
        # What the card showed (the deal's stage...) is read again: if it changed, the
        # approver decided on something that is no longer so. A resumed run has already
        # called the tool, possibly changing it itself: it reconciles instead.
        try:
            effects.check_still_so(conn, tool, context, arguments, row["preview"])
        except effects.Stale as exc:
            _fail(conn, client, row, str(exc), stale=True)
            return
        except ActionRefused as exc:
            _fail(conn, client, row, str(exc))
            return
    result = None
    if resuming:
        if tool.reconcile is None:
            _fail(
                conn,
                client,
                row,
                "it was interrupted and could not be checked, so it was not retried",
            )
            return
        result = tool.reconcile(context, arguments, key)
        log.info("action.reconciled", action_id=row["id"], already_done=result is not None)
    if result is None:
        try:
            result = tool.run(context, arguments, key)
        except ActionRefused as exc:
            _fail(conn, client, row, str(exc))
            return
        # Anything else propagates: the action stays 'executing' and Dramatiq's retry
        # reconciles before it calls again.
    done = actions.transition(
        conn,
        row,
        to="executed",
        allowed_from=["executing"],
        actor="agent",
        audit_action="action.executed",
        changes={
            "result": result,
            "executed_at": actions.NOW,
            **resumes.due_on_decision(conn, row),
        },
        details={"result": result},
    )
    if done is None:
        return
    log.info("action.executed", action_id=row["id"], tool=row["tool"])
    refresh_approval_message(conn, client, done)
    edited = " (as edited by the approver)" if done["edited_by"] else ""
    tell_requester(
        conn,
        client,
        done,
        "executed",
        f":white_check_mark: Approved by {rules.decided_by(conn, done)} and done{edited}: "
        f"{people_summary(done)}.",
    )


def _fail(
    conn: actions.Conn, client: WebClient, row: dict[str, Any], error: str, *, stale: bool = False
) -> None:
    changes: dict[str, Any] = {"error": error, **resumes.due_on_decision(conn, row)}
    if stale:
        # The card says it was stopped because things changed, not that it broke.
        changes["preview"] = {**(row["preview"] or {}), "stale": True}
    failed = actions.transition(
        conn,
        row,
        to="failed",
        allowed_from=["executing"],
        actor="agent",
        audit_action="action.failed",
        changes=changes,
        details={"error": error},
    )
    if failed is None:
        return
    log.error("action.failed", action_id=row["id"], error=error)
    refresh_approval_message(conn, client, failed)
    told = (
        f":octagonal_sign: {people_summary(failed)} was stopped before it ran: {mrkdwn_safe(error)}"
        if stale
        else f":warning: {people_summary(failed)} failed: {mrkdwn_safe(error)}."
    )
    tell_requester(conn, client, failed, "failed", told)


@contextmanager
def _action_lock(conn: actions.Conn, action_id: int) -> Iterator[None]:
    key = (LOCK_NAMESPACE << 47) | action_id
    locked = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
    if not (locked and locked["ok"]):
        raise ActionBusy(f"action {action_id} is being executed by another worker")
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
