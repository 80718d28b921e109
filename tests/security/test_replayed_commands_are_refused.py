"""A signed slash command or interaction counts once: the same (timestamp, signature)
pair again, within Slack's five-minute window, is refused, by any listener process."""

from __future__ import annotations

import json
import time

import requests

from sandbox.slack_events import sign
from sandbox.slack_interactivity import encode_form
from tests.security.conftest import ADMIN, DB
from tests.support.stack import Stack

FORM = "application/x-www-form-urlencoded"


def _signed_command(stack: Stack, text: str) -> tuple[bytes, dict[str, str]]:
    """A `/agent TEXT` by the admin in #general, signed as Slack signs it."""
    workspace = stack.slack.workspace
    form = stack.slack.interactions.payloads.slash_command(
        user=workspace.user(ADMIN),
        channel=workspace.channel("C0GENERAL"),
        command="/agent",
        text=text,
        response_url="https://hooks.slack.invalid/commands/replay",
        trigger_id=workspace.issue_trigger_id(ADMIN),
    )
    body = encode_form(form)
    now = int(time.time())
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": sign(stack.slack.signing_secret, now, body),
    }
    return body.encode(), headers


def _paused(db: DB, tenant: int) -> bool:
    row = db.execute(
        "SELECT paused FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    return bool(row and row["paused"])


def test_a_replayed_resume_cannot_undo_a_later_pause(
    stack: Stack, db: DB, tenant: int, strict_listener: tuple[str, int]
) -> None:
    """An admin resumes; someone who captured that signed request replays it after a
    later pause, to this listener and to another one: both refuse it, and the assistant
    stays paused."""
    body, headers = _signed_command(stack, "resume")
    first = requests.post(stack.events_url, data=body, headers=headers, timeout=10)
    assert first.status_code == 200 and "Resumed" in first.text

    paused = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "pause")
    assert paused.status == 200 and _paused(db, tenant)

    other_listener, _ = strict_listener
    for url in (stack.events_url, other_listener):
        replay = requests.post(url, data=body, headers=headers, timeout=10)
        assert replay.status_code == 401, replay.text
    assert _paused(db, tenant), "a replayed resume undid the pause"
    audit = db.execute(
        """SELECT count(*) AS n FROM audit_log WHERE tenant_id = %s AND actor = %s
           AND action = 'settings.paused' AND subject = 'False'
           AND created_at > now() - interval '1 minute'""",
        (tenant, ADMIN),
    ).fetchone()
    assert audit == {"n": 1}


def test_a_replayed_button_click_is_refused(stack: Stack, tenant: int) -> None:
    """An interaction (a click on a Reject button, of an action that is gone) replayed
    with its original signature gets 401 the second time."""
    workspace = stack.slack.workspace
    message = workspace.post_message("C0GENERAL", text="A button", user=ADMIN)
    payload = stack.slack.interactions.payloads.block_actions(
        user=workspace.user(ADMIN),
        channel=workspace.channel("C0GENERAL"),
        source=message,
        action={
            "action_id": "review_reject",
            "type": "button",
            "value": "0",
            "action_ts": workspace.next_ts(),
        },
        response_url="https://hooks.slack.invalid/actions/replay",
        trigger_id=workspace.issue_trigger_id(ADMIN),
    )
    body = encode_form({"payload": json.dumps(payload)})
    now = int(time.time())
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": sign(stack.slack.signing_secret, now, body),
    }
    first = requests.post(stack.events_url, data=body.encode(), headers=headers, timeout=10)
    assert first.status_code == 200
    again = requests.post(stack.events_url, data=body.encode(), headers=headers, timeout=10)
    assert again.status_code == 401
