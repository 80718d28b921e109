"""`/agent template` and `/agent channel`: admins pick templates and channel behaviour;
nobody else can; Slack Connect channels start private, with public knowledge only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.agent_template import load_templates
from tests.review.conftest import DB, REQUESTER
from tests.support.channels import ADMIN, new_channel
from tests.support.stack import Stack


@pytest.fixture
def tenant_without_template(stack: Stack, db: DB, tenant: int) -> Iterator[int]:
    """The shared tenant, given back with no workspace template whatever the test did."""
    yield tenant
    db.execute("UPDATE tenant_settings SET agent_template = NULL WHERE tenant_id = %s", (tenant,))


def test_non_admin_cannot_change_templates_or_channels(stack: Stack, db: DB, tenant: int) -> None:
    """Someone who is not an admin is refused `/agent template` and `/agent channel`, and
    nothing changes."""
    channel = new_channel(stack.slack)
    for command in ("template support", "channel visibility=private", "channel"):
        reply = stack.slack.run_slash_command(REQUESTER, channel, command).response
        assert reply is not None and "Only workspace admins" in reply["text"]
    assert (
        db.execute(
            "SELECT 1 FROM channel_settings WHERE tenant_id = %s AND slack_channel_id = %s",
            (tenant, channel),
        ).fetchone()
        is None
    )
    assert db.execute(
        "SELECT agent_template FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"agent_template": None}


def test_admin_picks_the_workspace_template_and_it_is_audited(
    stack: Stack, db: DB, tenant_without_template: int
) -> None:
    """`/agent template NAME` sets the workspace default; an unknown name is refused with
    the list of templates; `none` goes back to no template."""
    tenant = tenant_without_template
    unknown = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "template pirate").response
    assert unknown is not None and "no template `pirate`" in unknown["text"]
    assert "`support`" in unknown["text"]

    chosen = stack.slack.run_slash_command(ADMIN, "C0GENERAL", "template knowledge").response
    assert chosen is not None and "`knowledge` template" in chosen["text"]
    assert db.execute(
        "SELECT agent_template FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"agent_template": "knowledge"}
    audit = db.execute(
        "SELECT action, subject FROM audit_log WHERE tenant_id = %s AND actor = %s"
        " ORDER BY id DESC LIMIT 1",
        (tenant, ADMIN),
    ).fetchone()
    assert audit == {"action": "settings.agent_template", "subject": "knowledge"}

    stack.slack.run_slash_command(ADMIN, "C0GENERAL", "template none")
    assert db.execute(
        "SELECT agent_template FROM tenant_settings WHERE tenant_id = %s", (tenant,)
    ).fetchone() == {"agent_template": None}


def test_channel_settings_are_shown_and_changed(stack: Stack, db: DB, tenant: int) -> None:
    """`/agent channel` shows the effective settings; key=value pairs change them; a bad
    value is explained and changes nothing."""
    channel = new_channel(stack.slack)
    shown = stack.slack.run_slash_command(ADMIN, channel, "channel").response
    assert shown is not None
    assert "Template: none" in shown["text"] and "when mentioned" in shown["text"]
    assert "Visibility: public" in shown["text"] and "Knowledge: all" in shown["text"]

    bad = stack.slack.run_slash_command(ADMIN, channel, "channel reply=sometimes").response
    assert bad is not None and "`reply` is `mention`" in bad["text"]

    changed = stack.slack.run_slash_command(
        ADMIN,
        "C0GENERAL",
        f"channel <#{channel}|x> template=support reply=all collections=support,faq "
        "ask=<!subteam^S0APPROVERS|@approvers>",
    ).response
    support = load_templates(Path(__file__).resolve().parents[3] / "templates")["support"]
    assert changed is not None and f"`support` v{support.version}" in changed["text"]
    assert "every question" in changed["text"] and "`support`, `faq`" in changed["text"]
    row = db.execute(
        """SELECT agent_template, reply_mode, visibility, collections, allowed_usergroups
           FROM channel_settings WHERE tenant_id = %s AND slack_channel_id = %s""",
        (tenant, channel),
    ).fetchone()
    assert row == {
        "agent_template": "support",
        "reply_mode": "every_question",
        "visibility": None,
        "collections": ["support", "faq"],
        "allowed_usergroups": ["S0APPROVERS"],
    }

    stack.slack.run_slash_command(ADMIN, channel, "channel template=default ask=anyone")
    row = db.execute(
        """SELECT agent_template, allowed_usergroups FROM channel_settings
           WHERE tenant_id = %s AND slack_channel_id = %s""",
        (tenant, channel),
    ).fetchone()
    assert row == {"agent_template": None, "allowed_usergroups": []}


def test_slack_connect_channel_defaults_to_private_and_public_knowledge(
    stack: Stack, db: DB, tenant: int
) -> None:
    """A channel shared with another organisation answers privately and searches only the
    `public` collection until an admin says otherwise; Slack is asked once, then cached."""
    channel = new_channel(stack.slack, shared=True)
    shown = stack.slack.run_slash_command(ADMIN, channel, "channel").response
    assert shown is not None and "(Slack Connect)" in shown["text"]
    assert "Visibility: private" in shown["text"] and "Knowledge: `public`" in shown["text"]
    assert db.execute(
        "SELECT is_ext_shared FROM channel_settings WHERE tenant_id = %s AND slack_channel_id = %s",
        (tenant, channel),
    ).fetchone() == {"is_ext_shared": True}

    asked_before = len(stack.slack.calls("conversations.info"))
    opened = stack.slack.run_slash_command(ADMIN, channel, "channel visibility=public").response
    assert opened is not None and "Visibility: public" in opened["text"]
    assert len(stack.slack.calls("conversations.info")) == asked_before
