"""A person's decision on a pending action: a reaction, a button, an edit, a reason.

Runs in a worker, from a request the listener stored (so Slack's retries of the same
reaction are already folded into one). Authorisation is checked here, against the
tenant's approvers; every accepted decision is a guarded transition (review/actions.py),
so two approvers at the same moment still lead to one execution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from slack_sdk import WebClient

from review import actions, feedback, resumes, rules, tenant_settings
from review.authority import may_approve
from review.messages import (
    APPROVE,
    BUTTON_APPROVE,
    BUTTON_APPROVE_ALWAYS,
    BUTTON_EDIT,
    BUTTON_REJECT,
    EDIT,
    EDIT_BLOCK,
    EDIT_INPUT,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT,
    REJECT_VIEW,
    clicked_value,
    people_summary,
    readable,
    rejected_note,
)
from review.slack_posts import (
    note_in_approval_thread,
    refresh_approval_message,
    show_prompts,
    tell_privately,
    tell_requester,
)
from review.tenant_settings import ReviewSettings

log = structlog.get_logger(__name__)

NUMBERED = re.compile(r"<[A-Z]+_\d+>")  # a placeholder the approved call restores

# Slack names some emoji in more than one way; skin tones arrive as "name::skin-tone-2".
EMOJI_DECISIONS = {
    APPROVE: "approve",
    "heavy_check_mark": "approve",
    "white_check_mark": "approve",
    EDIT: "edit",
    "pencil": "edit",
    "memo": "edit",
    REJECT: "reject",
    "negative_squared_cross_mark": "reject",
}
BUTTON_DECISIONS = {BUTTON_APPROVE: "approve", BUTTON_EDIT: "edit", BUTTON_REJECT: "reject"}
BUTTON_DECISIONS[BUTTON_APPROVE_ALWAYS] = "approve_always"  # review/rules.py


# What a decision did, when it was this call that did it: "approved", "rejected" or
# "edited" (counted per template for the dashboard's quality row); None for anything else
# (a withdrawal, a reason, an edit asked for, an action already decided).
Outcome = str | None


@dataclass(frozen=True)
class Decision:
    user: str
    verb: str  # approve, edit, reject, withdraw, edited (new text), reason (rejection reason)
    action: actions.Row
    text: str | None = None  # the new text of an edit, or a rejection's reason
    channel: str | None = None  # where to answer the person privately
    # The person's team as the signed request names it (buttons, modals, Slack Connect
    # messages); None for reactions, whose team Slack is asked for (review/authority.py).
    user_team: str | None = None
    # The version the person saw: a button names it (and the start of its hash), as does
    # the Edit modal; None for reactions and thread replies, which apply to the latest.
    version: int | None = None
    hash_prefix: str = ""
    # When the listener stored the request: a ✅ added before the latest edit was made
    # was added to what the card showed then, so it does not approve the edit.
    received_at: datetime | None = None


def decision_from_request(
    conn: actions.Conn,
    tenant_id: int,
    kind: str,
    payload: dict[str, Any],
    received_at: datetime | None = None,
) -> Decision | None:
    """What the stored Slack request means for which action; None when it is not about one."""
    if kind in ("reaction_added", "reaction_removed"):
        event = payload["event"]
        item = event.get("item") or {}
        verb = EMOJI_DECISIONS.get(event.get("reaction", "").split("::")[0])
        if verb is None or item.get("type") != "message":
            return None
        if kind == "reaction_removed":
            if verb != "approve":
                return None
            verb = "withdraw"
        action = actions.by_approval_message(conn, tenant_id, item["channel"], item["ts"])
        if action is None:
            return None
        return Decision(
            event["user"], verb, action, channel=item["channel"], received_at=received_at
        )
    if kind == "review_button":
        clicked = payload["actions"][0]
        value = clicked_value(str(clicked["value"]))
        action = actions.load(conn, tenant_id, value.action_id)
        verb = BUTTON_DECISIONS[clicked["action_id"]]
        channel = (payload.get("channel") or {}).get("id")
        if action is None:
            return None
        return Decision(
            payload["user"]["id"],
            verb,
            action,
            channel=channel,
            user_team=_team(payload),
            version=value.version,
            hash_prefix=value.hash_prefix,
        )
    if kind in ("review_edit", "review_reject"):
        view = payload["view"]
        metadata = json.loads(view["private_metadata"])
        action = actions.load(conn, tenant_id, metadata["action_id"])
        if action is None:
            return None
        values = (view.get("state") or {}).get("values") or {}
        if view.get("callback_id") == REJECT_VIEW:
            # Reject's modal: a rejection with its (optional) reason, or, once rejected
            # (the ❌ reaction's private "Add a reason" button), the reason alone.
            reason = ((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value")
            verb = "reject" if action["status"] == "pending" else "reason"
            if verb == "reason" and not (reason or "").strip():
                return None
            text = reason or ""
        else:
            verb, text = "edited", values[EDIT_BLOCK][EDIT_INPUT]["value"]
        return Decision(
            payload["user"]["id"],
            verb,
            action,
            text=text,
            channel=action["approval_channel_id"],
            user_team=_team(payload),
            version=metadata.get("version") if verb == "edited" else None,
        )
    if kind == "approval_reply":
        event = payload["event"]
        action = actions.by_approval_message(conn, tenant_id, event["channel"], event["thread_ts"])
        if action is None:
            return None
        user = event.get("user", "")
        team = event.get("user_team")
        if action["status"] == "pending" and action["edit_requested_by"] == user:
            return Decision(
                user,
                "edited",
                action,
                text=event.get("text", ""),
                channel=event["channel"],
                user_team=team,
            )
        if (
            action["status"] == "rejected"
            and action["decided_by"] == user
            and not action["reject_reason"]
        ):
            return Decision(
                user,
                "reason",
                action,
                text=event.get("text", ""),
                channel=event["channel"],
                user_team=team,
            )
        return None
    return None


def apply_decision(
    conn: actions.Conn,
    client: WebClient,
    settings: ReviewSettings,
    decision: Decision,
    enqueue_execution: Callable[[int], None],
) -> Outcome:
    """Apply a decision the person may make; what it did (`Outcome`)."""
    action, user = decision.action, decision.user
    verdict = may_approve(
        conn,
        client,
        tenant_settings.for_action(settings, action),
        user,
        action["requested_by"],
        user_team=decision.user_team,
    )
    if not verdict.allowed:
        log.info("review.decision_ignored", action_id=action["id"], verb=decision.verb)
        actions.audit(
            conn,
            action,
            user,
            "action.decision_ignored",
            {"verb": decision.verb, "reason": verdict.reason},
        )
        if decision.channel:
            tell_privately(
                client, decision.channel, user, f"Your decision was not counted: {verdict.reason}."
            )
        if action["status"] == "pending" and decision.verb in (
            "approve",
            "approve_always",
            "reject",
            "edit",
        ):
            # The ✅ they added shows under the card: the card says it was not counted.
            refresh_approval_message(conn, client, action)
        return None
    handler = HANDLERS[decision.verb]
    return handler(conn, client, decision, enqueue_execution)


def _approve(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    if d.action["status"] == "pending":
        refusal = _not_the_latest(d)
        if refusal is not None:
            _refuse_stale(conn, client, d, refusal)
            return None
    version = d.action["version"]
    row = actions.transition(
        conn,
        d.action,
        to="approved",
        allowed_from=["pending"],
        actor=d.user,
        audit_action="action.approved",
        changes={"decided_by": d.user, "decided_at": actions.NOW},
        # What was approved: this version, and the hash of what its card showed. Guarded,
        # so an edit saved a moment before leaves this approval unmade.
        details={"version": version, "hash": d.action["shown_hash"]},
        version=version,
    )
    if row is None:
        current = d.action
        if current["status"] in ("approved", "executing") and current["decided_by"] == d.user:
            # This approval was recorded by an earlier attempt of this job that died before
            # the hand-over finished; hand it over again (execution runs at most once).
            show_prompts(client, current, present=False)
            enqueue(current["id"])
        return None  # otherwise already decided: a second approver, or a retried event
    # The approved state is the outbox: marked handed over first, because the hand-over
    # may run the action at once and a held action (tenant paused) clears the mark for
    # the sweeper to relay later; a hand-over lost in a crash is redone by the retry above.
    actions.set_fields(conn, row, queued_at=actions.NOW)
    show_prompts(client, row, present=False)
    enqueue(row["id"])
    after = actions.load(conn, row["tenant_id"], row["id"])
    if after is not None and after["status"] == "approved":
        # Queued or held rather than run here: show who approved it meanwhile. An action
        # run here already shows its outcome.
        refresh_approval_message(conn, client, after)
    return "approved"


def _not_the_latest(d: Decision) -> str | None:
    """Why this approval is not of the version the card shows now; None when it is."""
    latest = d.action["version"]
    if d.version is not None:
        same_hash = str(d.action["shown_hash"] or "").startswith(d.hash_prefix)
        if d.version != latest or not same_hash:
            return (
                f"the card you clicked showed an earlier version; it was edited since "
                f"(it is now version {latest}). Nothing was approved: look at the card "
                "again and approve it there if the edited version is right"
            )
        return None
    versioned_at = d.action.get("versioned_at")
    if d.received_at is not None and versioned_at is not None and d.received_at < versioned_at:
        return (
            "your ✅ was added before the last edit, so it does not approve the edited "
            "version. Nothing was approved: remove your ✅ and add it again (or press "
            "Approve) if the edited version is right"
        )
    return None


def _refuse_stale(conn: actions.Conn, client: WebClient, d: Decision, refusal: str) -> None:
    log.info("review.stale_approval_refused", action_id=d.action["id"])
    actions.audit(
        conn,
        d.action,
        d.user,
        "action.approval_refused",
        {"version_seen": d.version, "version_now": d.action["version"]},
    )
    if d.channel:
        tell_privately(client, d.channel, d.user, f"Not approved: {refusal}.")


def _withdraw(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    if d.action["decided_by"] != d.user:
        return None
    row = actions.transition(
        conn,
        d.action,
        to="pending",
        allowed_from=["approved"],
        actor=d.user,
        audit_action="action.approval_withdrawn",
        changes={
            "decided_by": None,
            "decided_at": None,
            "queued_at": None,
            "approved_version": None,
            "approved_hash": None,
        },
    )
    if row is not None:
        refresh_approval_message(conn, client, row)
        show_prompts(client, row, present=True)
    elif d.channel:
        tell_privately(
            client, d.channel, d.user, "Too late to withdraw: the action has already run."
        )
    return None


def _reject(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    reason = (d.text or "").strip()
    changes: dict[str, Any] = {
        "decided_by": d.user,
        "decided_at": actions.NOW,
        **resumes.due_on_decision(conn, d.action),
    }
    if reason:
        changes["reject_reason"] = reason
    row = actions.transition(
        conn,
        d.action,
        to="rejected",
        allowed_from=["pending"],
        actor=d.user,
        audit_action="action.rejected",
        changes=changes,
        details={"reason": reason} if reason else None,
    )
    if row is None:
        return None
    feedback.record(
        conn,
        tenant_id=row["tenant_id"],
        action_id=row["id"],
        kind="reject",
        original=_text(row["original_payload"]),
    )
    if reason:
        feedback.add_reason(conn, row["tenant_id"], row["id"], reason)
    refresh_approval_message(conn, client, row)
    show_prompts(client, row, present=False)
    because = f" Reason: {reason}" if reason else ""
    tell_requester(
        conn,
        client,
        row,
        "rejected",
        f":x: <@{d.user}> rejected: {people_summary(row)}. It was not done.{because}",
    )
    if not reason and d.text is None and d.channel:
        # A ❌ reaction cannot open a form: offer the reason privately instead.
        text, blocks = rejected_note(row)
        client.chat_postEphemeral(channel=d.channel, user=d.user, text=text, blocks=blocks)
    return "rejected"


def _reason(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    reason = (d.text or "").strip()
    feedback.add_reason(conn, d.action["tenant_id"], d.action["id"], reason)
    row = _set_and_show(
        conn, client, d, "action.rejection_reason", {"reason": reason}, reject_reason=reason
    )
    tell_requester(conn, client, row, "reason", f"The reason given for rejecting it: {reason}")
    return None


def _set_and_show(
    conn: actions.Conn,
    client: WebClient,
    d: Decision,
    audit_action: str,
    details: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """Sets `fields` on the decided action (audited), and shows the card as it is now."""
    actions.set_fields(conn, d.action, **fields)
    actions.audit(conn, d.action, d.user, audit_action, details)
    row = actions.load(conn, d.action["tenant_id"], d.action["id"])
    assert row is not None
    refresh_approval_message(conn, client, row)
    return row


def _request_edit(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    if d.action["status"] != "pending":
        return None
    row = _set_and_show(conn, client, d, "action.edit_requested", {}, edit_requested_by=d.user)
    note_in_approval_thread(
        client,
        row,
        f"<@{d.user}>, reply in this thread with the new text (or press Edit); "
        "it will need a final ✅.",
    )
    return None


def _edited(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    typed = (d.text or "").strip()
    if not typed:
        return None
    if d.version is not None and d.version != d.action["version"]:
        # Opened on a version someone else has edited since: saving it would undo theirs.
        if d.channel:
            tell_privately(
                client,
                d.channel,
                d.user,
                "Your edit was not saved: someone edited this action while you were "
                "editing it. Press Edit again to start from the latest version.",
            )
        return None
    # The approver edited what the card showed: values shown masked (or real) go back to
    # the placeholders the stored payload keeps, so the approved call restores them.
    new_text = _to_placeholders(d.action, typed)
    payload = {**d.action["payload"], "text": new_text}
    # The edit and the correction it teaches are stored together: never one without the other.
    with conn.transaction():
        row = actions.transition(
            conn,
            d.action,
            to="pending",
            allowed_from=["pending"],
            actor=d.user,
            audit_action="action.edited",
            changes={
                "payload": payload,
                # The approver typed the new text: show it as typed, beside what else was shown.
                "shown": _shown_after_edit(d.action, typed),
                "edited_by": d.user,
                "edited_at": actions.NOW,
                "edit_requested_by": None,
            },
            details={
                "original": d.action["payload"],
                "edited": payload,
                "version": d.action["version"] + 1,
            },
            version=d.action["version"],
        )
        if row is None:
            return None
        feedback.record(
            conn,
            tenant_id=row["tenant_id"],
            action_id=row["id"],
            kind="edit",
            original=_text(row["original_payload"]),
            corrected=new_text,
        )
    refresh_approval_message(conn, client, row)
    note_in_approval_thread(
        client,
        row,
        f"Edited (version {row['version']}). React ✅ (again) or press Approve to run the "
        "edited version; approvals of the earlier version no longer count.",
    )
    return "edited"


def _shown_after_edit(action: dict[str, Any], new_text: str) -> Any:
    shown = action.get("shown")
    if not shown:
        return actions.NULL
    before = shown.get("payload", action["payload"])
    return {
        **shown,
        "original_payload": shown.get("original_payload", before),
        "payload": {**before, "text": new_text},
    }


def _to_placeholders(action: dict[str, Any], typed: str) -> str:
    """`typed` with each value the approver view showed for a placeholder (a***@x.example,
    the real value, or "(email address 1, hidden)") written as that placeholder again.
    A shown value two placeholders share is ambiguous and left as typed."""
    stored = str(action["payload"].get("text") or "")
    shown_text = str(((action.get("shown") or {}).get("payload") or {}).get("text") or stored)
    pairs: dict[str, set[str]] = {}
    for match in NUMBERED.finditer(stored):
        pairs.setdefault(readable(match.group()), set()).add(match.group())
    for placeholder, value in _shown_values(stored, shown_text).items():
        pairs.setdefault(value, set()).add(placeholder)
    for value, placeholders in sorted(pairs.items(), key=lambda p: -len(p[0])):
        if len(placeholders) == 1 and value:
            typed = typed.replace(value, next(iter(placeholders)))
    return typed


def _shown_values(stored: str, shown_text: str) -> dict[str, str]:
    """placeholder -> what the card showed for it, by lining the stored text (with
    placeholders) up with the shown one; {} when they do not line up."""
    pattern: list[str] = []
    groups: dict[str, str] = {}
    end = 0
    for match in NUMBERED.finditer(stored):
        pattern.append(re.escape(stored[end : match.start()]))
        placeholder = match.group()
        if placeholder in groups:
            pattern.append(f"(?P={groups[placeholder]})")
        else:
            groups[placeholder] = f"p{len(groups)}"
            pattern.append(f"(?P<{groups[placeholder]}>.+?)")
        end = match.end()
    if not groups:
        return {}
    pattern.append(re.escape(stored[end:]))
    lined_up = re.fullmatch("".join(pattern), shown_text, flags=re.DOTALL)
    if lined_up is None:
        return {}
    return {p: lined_up.group(name) for p, name in groups.items() if lined_up.group(name) != p}


def _team(payload: dict[str, Any]) -> str | None:
    team = (payload.get("user") or {}).get("team_id")
    return str(team) if team else None


def _text(payload: dict[str, Any]) -> str:
    return str(payload.get("text") or payload.get("body") or json.dumps(payload))


def _approve_always(
    conn: actions.Conn, client: WebClient, d: Decision, enqueue: Callable[[int], None]
) -> Outcome:
    """Approve & always allow: a rule for actions like this one (review/rules.py), made by
    someone apply_decision found may approve it, then the approval itself. A retried job
    finds the rule (or the approval) its earlier attempt made, and does not make another."""
    if d.action["status"] == "pending" and _not_the_latest(d) is not None:
        return _approve(conn, client, d, enqueue)  # refused, and told why; no rule either
    if d.action["status"] == "pending" and rules.made_from(conn, d.action) is None:
        _make_rule(conn, client, d)
    return _approve(conn, client, d, enqueue)


def _make_rule(conn: actions.Conn, client: WebClient, d: Decision) -> None:
    settings = tenant_settings.load(conn, d.action["tenant_id"])
    rule = rules.create(conn, d.action, d.user, settings.rule_days)
    if rule is not None:
        note_in_approval_thread(
            client,
            d.action,
            f"<@{d.user}> approved this and allowed actions like it from now on: "
            f"rule {rule['number']}, {rules.describe(rule)}. "
            f"`/agent rules revoke {rule['number']}` stops it.",
        )
    elif d.channel:
        tell_privately(
            client,
            d.channel,
            d.user,
            "Approved. No rule was made: actions like this one (always reviewed here, "
            "flagged by the checks, or email to more than one domain) need a person each time.",
        )


HANDLERS: dict[
    str, Callable[[actions.Conn, WebClient, Decision, Callable[[int], None]], Outcome]
] = {
    "approve": _approve,
    "approve_always": _approve_always,
    "withdraw": _withdraw,
    "reject": _reject,
    "reason": _reason,
    "edit": _request_edit,
    "edited": _edited,
}
