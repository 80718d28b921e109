"""Moved to `testbed.processes` (benchmarks use it too); kept so existing imports work."""

from testbed.processes import REPO, START_TIMEOUT, ChatopsProcess, wait_for

__all__ = ["REPO", "START_TIMEOUT", "ChatopsProcess", "wait_for"]
