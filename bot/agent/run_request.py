"""One queued request, from its row in Postgres to the answer in its Slack thread.

Safe to run any number of times for the same request (Dramatiq retries, a worker killed
mid-run, a duplicate enqueue): an advisory lock keeps two workers off the same request,
finished requests are skipped, steps are replayed from Postgres, and the thread gets one
reply message, found again by its metadata if the worker died right after posting it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from psycopg import Connection
from slack_sdk.errors import SlackApiError

from bot.agent import live_reply, private_answers, thread_history, who_may_ask
from bot.agent.answer_blocks import blocks_for_answer
from bot.agent.answer_email import answer_email, read_email
from bot.agent.assistant_panel import (
    ASSISTANT_KINDS,
    handle_assistant_event,
    prepare_panel_turn,
)
from bot.agent.draft_preview import DraftPreview
from bot.agent.loop import Outcome, couldnt_complete
from bot.agent.run_service import RunRequest, admins_notifier, run_for_channel
from bot.agent.runs import (
    WorkerDeps,
    mark_failed,
    passes_by_itself,
    record_failure,
    start_run,
    usage_recorder,
)
from bot.agent.templates_in_use import TemplateRun, apply_to_run
from bot.summaries import job as summaries
from connectors.email.inbound_store import is_arrived
from connectors.slack.bot_tokens import with_bot_token
from connectors.slack.threads import SlackThread
from core.store import audit, requests
from guardrails.at_rest import for_storage
from review import conversation_settings, tenant_settings
from review.execute import execute_action
from review.held_answers import HELD_NOTICE, hold_for_review
from review.pending import announce_pending_actions, run_allowed

log = structlog.get_logger(__name__)

PAUSED_TEXT = (
    ":double_vertical_bar: The assistant is paused in this workspace by an admin, so it is "
    "not answering or taking actions right now. Please try again later."
)
THINKING_TEXT = ":hourglass_flowing_sand: Working on it…"
REPLY_EVENT_TYPE = live_reply.REPLY_EVENT_TYPE  # Slack metadata marking our reply messages
MENTION = re.compile(r"<@[A-Z0-9]+>")
ADVISORY_NAMESPACE = 0x72  # high bits of the lock key: keeps request locks apart from others


# Slack errors that no retry can fix.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)


class RequestBusy(Exception):
    """Another worker holds this request; Dramatiq retries it later."""


def run_request(deps: WorkerDeps, request_id: int) -> None:
    with deps.pool.connection() as conn, request_lock(conn, request_id):
        _run_locked(conn, deps, request_id, failed_reason=None)


def fail_request(deps: WorkerDeps, request_id: int, reason: str, *, final: bool = True) -> None:
    """Retries ran out: tell the person in their thread rather than go silent.

    A failure that passes by itself (the database restarting, Slack rate-limiting) is
    raised unless this is the ``final`` try, so the caller can try the apology again
    later; otherwise the request is marked failed with the reason, for admins to see.
    """
    try:
        with deps.pool.connection() as conn, request_lock(conn, request_id):
            _run_locked(conn, deps, request_id, failed_reason=reason)
    except Exception as exc:
        if not final and (isinstance(exc, RequestBusy) or passes_by_itself(exc)):
            raise
        log.exception("request.apology_failed", request_id=request_id)
        record_failure(deps.pool, request_id, reason)


@contextmanager
def request_lock(conn: Connection[dict[str, Any]], request_id: int) -> Iterator[None]:
    key = (ADVISORY_NAMESPACE << 47) | request_id
    row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
    if not (row and row["ok"]):
        raise RequestBusy(f"request {request_id} is being handled by another worker")
    try:
        yield
    finally:
        if not conn.broken:  # a session the database dropped holds no locks any more
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _run_locked(
    conn: Connection[dict[str, Any]], deps: WorkerDeps, request_id: int, failed_reason: str | None
) -> None:
    request = with_bot_token(requests.with_installation(conn, request_id))
    if request is None:
        log.error("request.not_found", request_id=request_id)
        return
    if requests.is_finished(request["status"]):
        log.info("request.already_finished", request_id=request_id, status=request["status"])
        return
    if request["source"] == "email" and is_arrived(request["payload"]):
        # The listener stored the message as it arrived; it is read here, first.
        if failed_reason is not None:
            mark_failed(conn, request_id, failed_reason)
            return
        read_email(conn, deps, request_id)
        request = with_bot_token(requests.with_installation(conn, request_id))
        if request is None or requests.is_finished(request["status"]):
            return
    if request["bot_token"] is None:
        # Answers and approvals happen in Slack; without a workspace nobody could see them.
        log.error("request.no_slack_workspace", request_id=request_id)
        mark_failed(conn, request_id, "this tenant has no Slack workspace to review answers in")
        return
    if request["source"] == "email":
        answer_email(conn, deps, request, failed_reason)
        return
    if request["kind"] in ASSISTANT_KINDS:
        handle_assistant_event(conn, deps.slack_client(request["bot_token"]), request)
        return
    tenant_id: int = request["tenant_id"]
    event = request["payload"]["event"]
    structlog.contextvars.bind_contextvars(tenant_id=tenant_id, request_id=request_id)
    try:
        requests.mark_running(conn, tenant_id, request_id)
        thread = SlackThread(
            deps.slack_client(request["bot_token"]),
            channel=event["channel"],
            thread_ts=event.get("thread_ts") or event["ts"],
        )
        if _refused(conn, thread, tenant_id, request_id, event):
            return
        conversation_id = _conversation(conn, tenant_id, thread)
        pinned = conversation_settings.resolve(
            conn, thread.client, tenant_id, thread.channel, conversation_id, deps.templates
        )
        run = start_run(conn, tenant_id, conversation_id, request_id, deps.llm is not None)
        structlog.contextvars.bind_contextvars(run_id=run["id"], conversation_id=conversation_id)
        private = pinned.visibility == "private"  # the answer goes to the asker only, at the end
        reply_ts = "" if private else ensure_reply_message(conn, thread, run)
        writer, preview = (
            (None, None)
            if private
            else live_reply.open_reply(
                conn,
                deps,
                request,
                thread,
                run_id=run["id"],
                conversation_id=conversation_id,
                placeholder_ts=reply_ts,
            )
        )

        settings = tenant_settings.load(conn, tenant_id)
        applied = apply_to_run(
            conn,
            deps,
            tenant_id,
            run["id"],
            pinned,
            channel=thread.channel,
            approval_ttl=settings.approval_ttl,
        )
        if failed_reason is not None:
            outcome = couldnt_complete(failed_reason)
        elif settings.paused:
            outcome = Outcome(text=PAUSED_TEXT, status="answered")
        else:
            question = MENTION.sub("", event.get("text") or "").strip()
            with live_reply.working_status(thread, event):
                outcome = _answer_in_thread(
                    conn,
                    deps,
                    request,
                    settings,
                    applied,
                    thread,
                    run["id"],
                    conversation_id,
                    question,
                    preview,
                )
        # Answers carry 👍 / 👎, "Ask a human" and per-source flags; notices do not.
        rated = outcome.status == "answered" and failed_reason is None and not settings.paused
        if private:
            reply_ts = private_answers.deliver(
                conn,
                thread.client,
                tenant_id=tenant_id,
                run_id=run["id"],
                channel=thread.channel,
                thread_ts=thread.thread_ts,
                asker=event.get("user", ""),
                text=outcome.text,
                rated=rated,
            )
        else:
            assert writer is not None  # a public answer has its reply message
            blocks = blocks_for_answer(conn, tenant_id, run["id"], outcome.text) if rated else None
            reply_ts = writer.finish(outcome.text, blocks=blocks)
        _finish(conn, tenant_id, request_id, run["id"], conversation_id, event, reply_ts, outcome)
        log.info("request.answered", status=outcome.status, reason=outcome.reason)
        # What an "always allow" rule approved runs now, exactly once as any approval.
        run_allowed(
            conn,
            tenant_id,
            run["id"],
            lambda action_id: execute_action(
                conn, deps.slack_client, deps.tools, deps.guardrails, action_id
            ),
        )
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error not in PERMANENT_SLACK_ERRORS:
            raise
        # Retrying cannot help (the bot was removed, the token revoked...): record it where
        # an admin will see it instead of burning retries.
        log.error("request.slack_refused", error=error)
        mark_failed(conn, request_id, f"Slack refused the reply: {error}")
    finally:
        structlog.contextvars.unbind_contextvars(
            "tenant_id", "request_id", "run_id", "conversation_id"
        )


def _answer_in_thread(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    request: dict[str, Any],
    settings: tenant_settings.ReviewSettings,
    applied: TemplateRun,
    thread: SlackThread,
    run_id: int,
    conversation_id: int,
    question: str,
    preview: DraftPreview | None = None,
) -> Outcome:
    tenant_id, event = request["tenant_id"], request["payload"]["event"]
    summary = _summary_answer(conn, deps, request, thread, run_id, conversation_id, question)
    if summary is not None:
        return summary
    history = thread_history.earlier_turns(
        conn,
        tenant_id,
        conversation_id,
        thread,
        before_ts=event["ts"],
        bot_ids={request["bot_id"]},
        skip_texts={THINKING_TEXT},
    )
    history = prepare_panel_turn(
        conn,
        thread.client,
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        channel=thread.channel,
        thread_ts=thread.thread_ts,
        question=question,
        history=history,
    )

    result = run_for_channel(
        conn,
        deps,
        RunRequest(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            run_id=run_id,
            bot_token=request["bot_token"],
            requested_by=event.get("user", ""),
            question=question,
            history=history,
            channel=event["channel"],
            source="requester",
            action_token=event.get("action_token"),
        ),
        applied,
        notify_admins=admins_notifier(thread.client, settings.approval_channel_id),
        preview=preview,
    )
    outcome, draft = result.outcome, result.draft
    if result.blocked:
        return outcome
    if draft is not None:
        if draft.action == "allow":
            outcome = Outcome(draft.text_for_people, outcome.status, outcome.reason)
        elif draft.action == "review":
            held = hold_for_review(
                conn,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                run_id=run_id,
                channel=thread.channel,
                thread_ts=thread.thread_ts,
                text=outcome.text,
                requested_by=event.get("user", ""),
                flags=[flag.for_people() for flag in draft.flags],
                ttl=settings.approval_ttl,
                approver_view=lambda proposal: deps.guardrails.approver_payload(
                    tenant_id, str(conversation_id), proposal
                ),
            )
            log.warning("draft.held_for_review", action_id=held["id"])
            outcome = Outcome(HELD_NOTICE, "answered", "draft held for review")
        else:
            # A draft the screens would not show at all (blocked) is withheld; logged.
            log.warning("draft.withheld", action=draft.action)
            notice = (
                draft.notice_for_people or "I drafted an answer, but it did not pass my checks."
            )
            outcome = Outcome(notice, "failed", f"draft {draft.action}ed by guardrails")
    note = announce_pending_actions(conn, thread.client, settings, run_id)
    if note:
        outcome = Outcome(f"{outcome.text}\n\n{note}", outcome.status, outcome.reason)
    return outcome


def _summary_answer(
    conn: Connection[dict[str, Any]],
    deps: WorkerDeps,
    request: dict[str, Any],
    thread: SlackThread,
    run_id: int,
    conversation_id: int,
    question: str,
) -> Outcome | None:
    """The answer when the question asks for a summary ("summarise this thread", "what
    did I miss in #support since Monday?"), which a summary job answers instead of the
    agent loop; None for any other question."""
    tenant_id, event = request["tenant_id"], request["payload"]["event"]
    context = conn.execute(
        "SELECT assistant_context FROM conversations WHERE id = %s AND tenant_id = %s",
        (conversation_id, tenant_id),
    ).fetchone()
    panel = (context or {}).get("assistant_context")
    asked = summaries.Asked(
        tenant_id=tenant_id,
        asker=event.get("user", ""),
        channel=thread.channel,
        thread_ts=thread.thread_ts,
        request_ts=event["ts"],
        bot_id=request["bot_id"],
        in_thread=bool(event.get("thread_ts")) and event.get("thread_ts") != event["ts"],
        viewing_channel=(panel or {}).get("channel_id") if panel is not None else None,
    )
    wanted = summaries.recognise(conn, asked, question)
    if wanted is None:
        return None
    log.info("request.summary", target=wanted.target)
    return summaries.for_request(
        conn,
        thread.client,
        deps.llm,
        deps.guardrails,
        asked,
        wanted,
        conversation_key=str(conversation_id),
        on_call=usage_recorder(conn, tenant_id, run_id, deps.prices, deps.metrics),
    )


def _refused(
    conn: Connection[dict[str, Any]],
    thread: SlackThread,
    tenant_id: int,
    request_id: int,
    event: dict[str, Any],
) -> bool:
    """Whether the asker may not ask in this channel; if so they are told privately and
    the request ends without a run."""
    channel = conversation_settings.load_channel(conn, tenant_id, thread.channel)
    asker = event.get("user", "")
    note = who_may_ask.refusal(thread.client, channel.allowed_usergroups, asker)
    if note is None:
        return False
    thread.client.chat_postEphemeral(
        channel=thread.channel, user=asker, thread_ts=thread.thread_ts, text=note
    )
    requests.finish(
        conn,
        request_id,
        "ignored",
        "the asker is not in the channel's allowed user groups",
        tenant_id=tenant_id,
    )
    log.info("request.asker_not_allowed")
    return True


def _conversation(conn: Connection[dict[str, Any]], tenant_id: int, thread: SlackThread) -> int:
    row = conn.execute(
        """INSERT INTO conversations
             (tenant_id, channel_kind, external_key, slack_channel_id, slack_thread_ts)
           VALUES (%s, 'slack', %s, %s, %s)
           ON CONFLICT (tenant_id, channel_kind, external_key)
             DO UPDATE SET slack_channel_id = EXCLUDED.slack_channel_id
           RETURNING id""",
        (tenant_id, f"{thread.channel}:{thread.thread_ts}", thread.channel, thread.thread_ts),
    ).fetchone()
    assert row is not None
    conversation_id: int = row["id"]
    return conversation_id


def ensure_reply_message(
    conn: Connection[dict[str, Any]],
    thread: SlackThread,
    run: dict[str, Any],
    text: str = THINKING_TEXT,
) -> str:
    """The ts of this run's one message in the thread, posting it (as ``text``) only if it
    is not there."""
    if run["reply_ts"]:
        return str(run["reply_ts"])
    ts = None
    if run["reply_intent_at"] is not None:
        # A previous attempt meant to post and may have died before recording it.
        ts = thread.find_by_metadata(REPLY_EVENT_TYPE, "run_id", run["id"])
    if ts is None:
        conn.execute("UPDATE agent_runs SET reply_intent_at = now() WHERE id = %s", (run["id"],))
        try:
            ts = thread.post(
                text,
                metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"run_id": run["id"]}},
            )
        except SlackApiError:
            # Slack answered (rate limited, say), so nothing was posted: the retry need
            # not read the thread to look for it.
            conn.execute("UPDATE agent_runs SET reply_intent_at = NULL WHERE id = %s", (run["id"],))
            raise
    conn.execute("UPDATE agent_runs SET reply_ts = %s WHERE id = %s", (ts, run["id"]))
    return ts


def _finish(
    conn: Connection[dict[str, Any]],
    tenant_id: int,
    request_id: int,
    run_id: int,
    conversation_id: int,
    event: dict[str, Any],
    reply_ts: str,
    outcome: Outcome,
) -> None:
    # The question was masked for good before it was stored; the answer is masked too.
    asked, answered = for_storage(conn, tenant_id, (event.get("text") or "", outcome.text))
    with conn.transaction():
        conn.execute(
            """INSERT INTO messages (tenant_id, conversation_id, role, author, text, external_id)
               VALUES (%s, %s, 'user', %s, %s, %s), (%s, %s, 'assistant', 'bot', %s, %s)
               ON CONFLICT (conversation_id, external_id) DO UPDATE SET text = EXCLUDED.text""",
            (
                tenant_id,
                conversation_id,
                event.get("user") or "",
                asked,
                event["ts"],
                tenant_id,
                conversation_id,
                answered,
                reply_ts,
            ),
        )
        run_status = "answered" if outcome.status == "answered" else "failed"
        conn.execute(
            """UPDATE agent_runs SET status = %s, error = %s, finished_at = now()
               WHERE id = %s AND tenant_id = %s""",
            (run_status, outcome.reason, run_id, tenant_id),
        )
        requests.finish(
            conn,
            request_id,
            "done" if outcome.status == "answered" else "failed",
            outcome.reason,
            tenant_id=tenant_id,
        )
        audit.append(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor="agent",
                action=f"reply.{outcome.status}",
                subject=f"{event['channel']}:{reply_ts}",
                details={"run_id": run_id, "request_id": request_id},
            ),
        )
