"""`chatops sandbox --reset`: the workspace and the product's data go together."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StartupError
from sandbox.data_folder import reset


def a_used_data_folder(folder: Path) -> None:
    for name in ("postgres", "redis", "outbox", "logs"):
        (folder / name).mkdir()
        (folder / name / "something").write_text("kept until reset")
    (folder / "workspace.json").write_text("{}")
    (folder / "sample-knowledge.ingested").write_text("abc\n")


def test_reset_deletes_the_workspace_with_the_database_queue_and_outbox(tmp_path: Path) -> None:
    """Everything that makes up the sandbox's state goes; the logs stay for reading."""
    a_used_data_folder(tmp_path)

    deleted = reset(tmp_path, configured_database=None)

    assert sorted(deleted) == sorted(
        ["postgres", "redis", "outbox", "workspace.json", "sample-knowledge.ingested"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_reset_refuses_to_leave_a_configured_database_behind(tmp_path: Path) -> None:
    """With DATABASE_URL set it would empty the workspace but keep that database's open
    approvals: it says so and deletes nothing."""
    a_used_data_folder(tmp_path)

    with pytest.raises(StartupError, match="DATABASE_URL"):
        reset(tmp_path, configured_database="postgresql://db.example/chatops")

    assert (tmp_path / "workspace.json").exists() and (tmp_path / "postgres").exists()
