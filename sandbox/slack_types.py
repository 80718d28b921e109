"""The JSON type and Slack's error codes, shared by every part of the Slack emulator.

Kept apart from the workspace so the modules the workspace is built from (views) can use
them without importing the workspace.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


class SlackError(Exception):
    """A Slack error code (``"channel_not_found"``), with optional extra response fields."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra
