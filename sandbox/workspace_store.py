"""The sandbox's Slack workspace and mailbox, kept in its data folder across restarts.

The product's data (Postgres, the queue) outlives a restart of `chatops sandbox`; without
this the workspace came back empty, and an approval still open in the database had no card
left to approve. Everything people made (channels, messages, threads, reactions, assistant
threads, the mail sent to the agent and the outbox) is written to `workspace.json` about
once a second while anything changes, and once more after the product has stopped; the
next start restores it before the page answers.

The file names the database it goes with: a workspace saved against another database
(another DATABASE_URL, or an embedded one in another folder) is not restored, since its
cards would point at approvals that database has never seen.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.mailbox import Mailbox
from sandbox.slack_workspace import SlackWorkspace

STATE_FILE = "workspace.json"
FORMAT_VERSION = 1
SAVE_INTERVAL = 1.0  # seconds between checks for changes to write


@dataclass(frozen=True)
class Restored:
    """What a start found in the data folder, as a person is told it."""

    restored: bool
    summary: str


class WorkspaceStore:
    """`workspace.json` in the data folder, for one workspace, mailbox and database."""

    def __init__(
        self, data_dir: Path, database: str, workspace: SlackWorkspace, mailbox: Mailbox
    ) -> None:
        self.path = data_dir / STATE_FILE
        self.database = database
        self.workspace = workspace
        self.mailbox = mailbox
        self._last_written = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    def restore(self) -> Restored:
        """Load the saved workspace, if there is one for this database."""
        if not self.path.exists():
            return Restored(False, "new (nothing saved yet)")
        try:
            saved: dict[str, Any] = json.loads(self.path.read_text())
            if saved.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {saved.get('format')!r}, expected {FORMAT_VERSION}")
            if saved.get("database") != self.database:
                return Restored(False, "new (the saved one belongs to another database)")
            self.workspace.import_state(saved["workspace"])
            self.mailbox.import_state(saved["mail"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            kept = self.path.with_name(f"{STATE_FILE}.unreadable")
            self.path.replace(kept)
            return Restored(False, f"new (could not read the saved one, kept as {kept}: {exc})")
        self._last_written = self._serialised()
        messages = len(saved["workspace"]["messages"])
        mails = len(saved["mail"]["outbox"])
        return Restored(
            True, f"restored from {self.path} ({messages} messages, {mails} sent emails)"
        )

    def save(self) -> None:
        """Write the current state if it changed since the last write (atomically)."""
        with self._lock:
            current = self._serialised()
            if current == self._last_written:
                return
            partial = self.path.with_name(f"{STATE_FILE}.partial")
            partial.write_text(current)
            os.replace(partial, self.path)
            self._last_written = current

    def keep_saving(self) -> None:
        """Save about once a second from a background thread, until `stop`."""

        def loop() -> None:
            while not self._stop.wait(SAVE_INTERVAL):
                self.save()

        self._saver = threading.Thread(target=loop, name="workspace-saver", daemon=True)
        self._saver.start()

    def stop(self) -> None:
        """Stop the background saves and write what is there now."""
        self._stop.set()
        if self._saver is not None:
            self._saver.join()
        self.save()

    def _serialised(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "database": self.database,
                "workspace": self.workspace.export_state(),
                "mail": self.mailbox.export_state(),
            }
        )
