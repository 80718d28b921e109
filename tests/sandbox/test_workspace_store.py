"""The sandbox's workspace and mailbox survive a restart through workspace.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.mail_sink import MailSink, SinkMessage
from sandbox.mailbox import Mailbox
from sandbox.slack_workspace import SlackWorkspace
from sandbox.workspace_store import STATE_FILE, WorkspaceStore

BOT, REQUESTER, APPROVER = "U0SANDBOT", "U0REQUESTER", "U0APPROVER"
DATABASE = "embedded:/data/postgres"
MAIL = b"From: agent@sandbox.example\r\nTo: alice@customer.example\r\nSubject: Hi\r\n\r\nHello\r\n"


@pytest.fixture
def outbox() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


def store(folder: Path, outbox: MailSink, database: str = DATABASE) -> WorkspaceStore:
    mailbox = Mailbox(outbox, "127.0.0.1", 1, "agent@sandbox.example")
    return WorkspaceStore(folder, database, SlackWorkspace.sandbox(), mailbox)


def test_a_restart_brings_back_threads_reactions_panels_and_mail(
    tmp_path: Path, outbox: MailSink
) -> None:
    """Messages with their threads and reactions, an assistant thread's title and prompts,
    and both halves of the mailbox are as they were; new messages sort after the old."""
    before = store(tmp_path, outbox)
    card = before.workspace.post_message("C0APPROVALS", user=BOT, text="Approval needed")
    before.workspace.add_reaction("C0APPROVALS", card.ts, "white_check_mark", BOT)
    before.workspace.post_message("C0APPROVALS", user=APPROVER, text="why?", thread_ts=card.ts)
    panel = before.workspace.open_assistant_thread(REQUESTER)
    prompts = [{"title": "Find an answer", "message": "What is our refund policy?"}]
    before.workspace.set_suggested_prompts(panel.channel, panel.ts, prompts, "Try:")
    before.workspace.set_assistant_title(panel.channel, panel.ts, "Refunds")
    outbox.restore([SinkMessage("agent@sandbox.example", ("alice@customer.example",), MAIL,
                                False, None, 1.0)])  # fmt: skip
    before.save()

    with MailSink() as fresh_outbox:
        after = store(tmp_path, fresh_outbox)
        restored = after.restore()
        [sent] = after.mailbox.sent_by_agent()

    assert restored.restored and "3 messages, 1 sent emails" in restored.summary
    [root, reply] = after.workspace.thread("C0APPROVALS", card.ts)
    assert root.text == "Approval needed" and reply.text == "why?"
    assert [(r.name, r.users) for r in root.reactions] == [("white_check_mark", [BOT])]
    assert after.workspace.suggested_prompts(panel.channel, panel.ts) == {
        "title": "Try:",
        "prompts": prompts,
    }
    assert after.workspace.assistant_title(panel.channel, panel.ts) == "Refunds"
    assert sent.subject == "Hi" and sent.to == "alice@customer.example"
    later = after.workspace.post_message("C0APPROVALS", user=APPROVER, text="later")
    assert float(later.ts) > float(reply.ts)


def test_a_workspace_saved_for_another_database_is_not_restored(
    tmp_path: Path, outbox: MailSink
) -> None:
    """Its cards would point at approvals the current database never had: start empty."""
    before = store(tmp_path, outbox, database="postgresql://elsewhere/chatops")
    before.workspace.post_message("C0SUPPORT", user=REQUESTER, text="hello")
    before.save()

    after = store(tmp_path, outbox)
    restored = after.restore()

    assert not restored.restored and "another database" in restored.summary
    assert after.workspace.history("C0SUPPORT") == []


def test_an_unreadable_file_is_kept_aside_and_the_start_goes_on(
    tmp_path: Path, outbox: MailSink
) -> None:
    """A damaged workspace.json does not stop the sandbox: it is renamed and said so."""
    (tmp_path / STATE_FILE).write_text("{not json")

    restored = store(tmp_path, outbox).restore()

    assert not restored.restored and "could not read" in restored.summary
    assert (tmp_path / f"{STATE_FILE}.unreadable").read_text() == "{not json"


def test_saving_writes_only_when_something_changed(tmp_path: Path, outbox: MailSink) -> None:
    """The saver runs every second; an unchanged workspace is not rewritten."""
    saved = store(tmp_path, outbox)
    saved.save()
    first = (tmp_path / STATE_FILE).stat().st_mtime_ns
    saved.save()
    assert (tmp_path / STATE_FILE).stat().st_mtime_ns == first
    saved.workspace.post_message("C0SUPPORT", user=REQUESTER, text="hello")
    saved.save()
    assert "hello" in json.dumps(json.loads((tmp_path / STATE_FILE).read_text()))
