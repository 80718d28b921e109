"""A run resumes when the action it proposed is decided (issue 15).

Once an action a Slack run proposed is approved and done, fails, or is rejected, review
sends this job (review/resumes.py). It runs the agent loop again, as a new run of the same
request tied to the action, with the thread's conversation, a turn that states the
outcome, and the original request as the question; so the model decides the next step:
propose the next action of a chain (reviewed with the same rules as any), adjust a
rejected proposal to the reason given, or conclude.

What the thread reads: review's own notice of the outcome ("Approved by @x and done: ...")
stays the record of what happened. The resumed run replies in the thread only when it has
something beyond that notice:

- it proposed a further action: the reply says it waits for approval, and the card is
  announced as for any run;
- it asks the person something (the plan's intent is "clarify");
- its answer draws on something the notice does not hold: a tool it called, or a source
  from the knowledge base it cites.

Otherwise (an answer made only of the conversation and the outcome, i.e. restating it)
nothing is posted and `run.resumed_nothing_next` is logged. A resumed run that fails (the
model down, its steps used up) posts nothing either: the outcome is already in the thread,
and the failure is on the run for admins (`run.resume_failed`).

Bounds: a request resumes at most `WorkerDeps.max_resumes` times (AGENT_MAX_RESUMES), so a
reject / propose-again loop ends; steps and time are limited as for any run; offline (no
model) never resumes. Exactly once: the job holds the request's lock, the resumed run is
one row per action, its steps are replayed from Postgres on a retry, its reply is posted
once (found again by its metadata), and its proposals keep their idempotency keys.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from psycopg import Connection
from slack_sdk.errors import SlackApiError

from bot.agent import private_answers, thread_history
from bot.agent.answer_blocks import blocks_for_answer
from bot.agent.prompts import Turn
from bot.agent.run_request import (
    MENTION,
    PERMANENT_SLACK_ERRORS,
    REPLY_EVENT_TYPE,
    THINKING_TEXT,
    ensure_reply_message,
    request_lock,
)
from bot.agent.run_service import RunRequest, RunResult, admins_notifier, run_for_channel
from bot.agent.runs import WorkerDeps, start_resumed_run
from bot.agent.templates_in_use import apply_to_run
from connectors.slack.bot_tokens import with_bot_token
from connectors.slack.threads import SlackThread
from core.store import audit
from guardrails.at_rest import for_storage
from review import conversation_settings, resumes, tenant_settings
from review.pending import announce_pending_actions

log = structlog.get_logger(__name__)

MAX_RESULT_CHARS = 1_000  # of an action's result, told to the model


def resume_run(deps: WorkerDeps, action_id: int) -> None:
    """Continue the conversation of the run that proposed ``action_id``, now decided."""
    with deps.pool.connection() as conn:
        action = _load(conn, action_id)
        if action is None:
            log.info("run.resume_not_due", action_id=action_id)
            return
        with request_lock(conn, action["request_id"]):
            structlog.contextvars.bind_contextvars(
                tenant_id=action["tenant_id"], request_id=action["request_id"], action_id=action_id
            )
            try:
                _resume_locked(conn, deps, action)
            finally:
                structlog.contextvars.unbind_contextvars(
                    "tenant_id", "request_id", "action_id", "run_id"
                )


def stop_resumed_run(deps: WorkerDeps, action_id: int, reason: str) -> None:
    """The resumed run was stopped for good (its time limit): recorded as failed, and the
    thread, which has the action's outcome, is left as it is."""
    with deps.pool.connection() as conn:
        conn.execute(
            """UPDATE agent_runs SET status = 'failed', error = %s, finished_at = now()
               WHERE resumes_action_id = %s AND status = 'running'""",
            (reason, action_id),
        )
    log.error("run.resume_failed", action_id=action_id, reason=reason)


def outcome_turn(action: dict[str, Any]) -> Turn:
    """The turn that tells the model what became of the action it proposed."""
    proposed = f"The action you proposed, {action['summary']},"
    if action["status"] == "executed":
        edited = " (as they edited it)" if action["edited_by"] else ""
        said = f"{proposed} was approved by a person and done{edited}: {_result(action['result'])}."
    elif action["status"] == "rejected":
        reason = (action["reject_reason"] or "").strip() or "no reason given"
        said = f"{proposed} was rejected by a person: {reason}."
    else:
        said = f"{proposed} failed: {action['error'] or 'no error was given'}."
    return {
        "role": "user",
        "content": f"{said} The person has been told this. Continue with the request: "
        "propose its next action if one is still needed (adjusted to the reason, if it was "
        "rejected), or reply briefly if nothing is left to do.",
    }


def _load(conn: Connection[dict[str, Any]], action_id: int) -> dict[str, Any] | None:
    """The decided action with its run's request, thread and workspace; None when it is
    not due to resume."""
    row = conn.execute(
        """SELECT a.*, r.request_id, q.payload AS request_payload,
                  c.slack_channel_id, c.slack_thread_ts,
                  i.bot_token, i.bot_token_sealed, i.bot_id
           FROM pending_actions a
           JOIN agent_runs r ON r.id = a.run_id AND r.tenant_id = a.tenant_id
           JOIN inbound_requests q ON q.id = r.request_id AND q.tenant_id = a.tenant_id
           JOIN conversations c ON c.id = a.conversation_id AND c.tenant_id = a.tenant_id
           JOIN slack_installations i ON i.tenant_id = a.tenant_id
           WHERE a.id = %s AND a.resume_due_at IS NOT NULL AND a.status = ANY(%s)""",
        (action_id, list(resumes.RESUMED_FROM)),
    ).fetchone()
    return with_bot_token(row)


def _resume_locked(
    conn: Connection[dict[str, Any]], deps: WorkerDeps, action: dict[str, Any]
) -> None:
    tenant_id, action_id = action["tenant_id"], action["id"]
    if deps.llm is None:
        log.info("run.resume_skipped", reason="offline")
        return
    existing = conn.execute(
        "SELECT status FROM agent_runs WHERE resumes_action_id = %s AND tenant_id = %s",
        (action_id, tenant_id),
    ).fetchone()
    if existing is not None and existing["status"] != "running":
        log.info("run.resume_already_finished", status=existing["status"])
        return
    if existing is None and _resumes_so_far(conn, tenant_id, action["request_id"]) >= (
        deps.max_resumes
    ):
        log.info("run.resume_cap_reached", max_resumes=deps.max_resumes)
        return
    settings = tenant_settings.load(conn, tenant_id)
    if settings.paused:
        resumes.put_back(conn, tenant_id, action_id)
        log.info("run.resume_held_while_paused")
        return
    run = start_resumed_run(
        conn, tenant_id, action["conversation_id"], action["request_id"], action_id
    )
    structlog.contextvars.bind_contextvars(run_id=run["id"])
    client = deps.slack_client(action["bot_token"])
    thread = SlackThread(
        client, channel=action["slack_channel_id"], thread_ts=action["slack_thread_ts"]
    )
    try:
        _continue(conn, deps, action, run, thread, settings)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error not in PERMANENT_SLACK_ERRORS:
            raise
        log.error("run.resume_slack_refused", error=error)
        _finish(conn, run, None, "failed", f"Slack refused the reply: {error}")


def _resumes_so_far(conn: Connection[dict[str, Any]], tenant_id: int, request_id: int) -> int:
    row = conn.execute(
        """SELECT count(*) AS n FROM agent_runs
           WHERE request_id = %s AND tenant_id = %s AND resumes_action_id IS NOT NULL""",
        (request_id, tenant_id),
    ).fetchone()
    return int(row["n"]) if row else 0


def _continue(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    action: dict[str, Any],
    run: dict[str, Any],
    thread: SlackThread,
    settings: tenant_settings.ReviewSettings,
) -> None:
    tenant_id, conversation_id = action["tenant_id"], action["conversation_id"]
    event = action["request_payload"]["event"]
    pinned = conversation_settings.resolve(
        conn, thread.client, tenant_id, thread.channel, conversation_id, deps.templates
    )
    applied = apply_to_run(
        conn,
        deps,
        tenant_id,
        run["id"],
        pinned,
        channel=thread.channel,
        approval_ttl=settings.approval_ttl,
    )
    # Everything said in the thread before this run started (the same on a retry).
    history = thread_history.earlier_turns(
        conn,
        tenant_id,
        conversation_id,
        thread,
        before_ts=f"{run['started_at'].timestamp():.6f}",
        bot_ids={action["bot_id"]},
        skip_texts={THINKING_TEXT},
    )

    result = run_for_channel(
        conn,
        deps,
        RunRequest(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            run_id=run["id"],
            bot_token=action["bot_token"],
            requested_by=action["requested_by"],
            question=MENTION.sub("", event.get("text") or "").strip(),
            history=[*history, outcome_turn(action)],
            channel=thread.channel,
            source="requester",
        ),
        applied,
        notify_admins=admins_notifier(thread.client, settings.approval_channel_id),
    )
    note = announce_pending_actions(conn, thread.client, settings, run["id"])
    answer = _postable_answer(result)
    if note is not None:
        text = f"{answer}\n\n{note}" if answer else note
    elif answer is not None and _something_new(conn, tenant_id, run["id"]):
        text = answer
    else:
        if result.outcome.status == "failed":
            log.warning("run.resume_failed", reason=result.outcome.reason)
        else:
            log.info("run.resumed_nothing_next")
        _finish(conn, run, None, result.outcome.status, result.outcome.reason)
        return
    if pinned.visibility == "private":
        reply_ts = private_answers.deliver(
            conn,
            thread.client,
            tenant_id=tenant_id,
            run_id=run["id"],
            channel=thread.channel,
            thread_ts=thread.thread_ts,
            asker=event.get("user", ""),
            text=text,
            rated=answer is not None,
        )
    else:
        reply_ts = ensure_reply_message(conn, thread, run, text)
        if answer is not None:  # an answer carries 👍 / 👎 and its sources, as any
            thread.update(
                reply_ts,
                text,
                blocks=blocks_for_answer(conn, tenant_id, run["id"], text),
                metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"run_id": run["id"]}},
            )
    _finish(conn, run, (reply_ts, text), "answered", result.outcome.reason)
    log.info("run.resumed_replied", proposed=note is not None)


def _postable_answer(result: RunResult) -> str | None:
    """The model's answer as people may read it; None when there is none to show (the run
    failed, the guardrails stopped the request, or held or blocked the draft)."""
    if result.blocked or result.outcome.status != "answered":
        return None
    if result.draft is None:
        return result.outcome.text
    if result.draft.action != "allow":
        log.warning("draft.withheld", action=result.draft.action)
        return None
    return result.draft.text_for_people


def _something_new(conn: Connection[dict[str, Any]], tenant_id: int, run_id: int) -> bool:
    """Whether the run's answer holds more than the outcome already told (the module's
    rule): it asks the person something, used a tool, or cites the knowledge base. Read
    from the persisted steps, so a replayed run decides the same."""
    steps = conn.execute(
        "SELECT kind, output FROM agent_steps WHERE run_id = %s AND tenant_id = %s"
        " ORDER BY position",
        (run_id, tenant_id),
    ).fetchall()
    plans = [s["output"] for s in steps if s["kind"] == "plan"]
    verdicts = [s["output"] for s in steps if s["kind"] == "verify"]
    asks = bool(plans) and plans[-1].get("intent") == "clarify"
    acted = any(s["kind"] == "act" for s in steps)
    cites = bool(verdicts) and bool(verdicts[-1].get("citations"))
    return asks or acted or cites


def _finish(
    conn: Connection[dict[str, Any]],
    run: dict[str, Any],
    reply: tuple[str, str] | None,
    status: str,
    reason: str | None,
) -> None:
    """Record the resumed run's end, and its reply (masked) as a turn of the thread."""
    tenant_id = run["tenant_id"]
    with conn.transaction():
        if reply is not None:
            reply_ts, text = reply
            stored = for_storage(conn, tenant_id, text)
            conn.execute(
                """INSERT INTO messages
                     (tenant_id, conversation_id, role, author, text, external_id)
                   VALUES (%s, %s, 'assistant', 'bot', %s, %s)
                   ON CONFLICT (conversation_id, external_id) DO UPDATE SET text = EXCLUDED.text""",
                (tenant_id, run["conversation_id"], stored, reply_ts),
            )
        conn.execute(
            """UPDATE agent_runs SET status = %s, error = %s, finished_at = now()
               WHERE id = %s AND tenant_id = %s""",
            ("answered" if status == "answered" else "failed", reason, run["id"], tenant_id),
        )
        audit.append(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor="agent",
                action="run.resumed" if reply is not None else "run.resumed_silently",
                subject=f"run:{run['id']}",
                details={
                    "action_id": run["resumes_action_id"],
                    "request_id": run["request_id"],
                    "status": status,
                },
            ),
        )


def _result(result: Any) -> str:
    """An action's result, as the model is told it."""
    if result is None:
        return "no result was returned"
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return text[:MAX_RESULT_CHARS]
