"""On a failed test, what the stack's child processes logged while it ran.

A test that drives `chatops serve` and `chatops worker` fails with "timed out waiting
for ...": the reason is in those processes' logs, not in the test's own output. CI keeps
only what pytest prints, so the lines each process wrote during the failing test are
added to its report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.processes import ChatopsProcess

LOG_OFFSETS = pytest.StashKey[dict[Path, int]]()
MAX_LINES = 80  # per process: the end of what it wrote is where a failure shows


def _logs(item: pytest.Item) -> list[Path]:
    """The log files of the child processes the test's fixtures hold: a stack's serve and
    worker, the fault tests' stack, and so on."""
    funcargs = getattr(item, "funcargs", {})
    return [
        part.log_path
        for value in funcargs.values()
        for part in getattr(value, "__dict__", {}).values()
        if isinstance(part, ChatopsProcess)
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    item.stash[LOG_OFFSETS] = {
        path: path.stat().st_size if path.exists() else 0 for path in _logs(item)
    }
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for path, offset in item.stash.get(LOG_OFFSETS, {}).items():
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(offset)
            written = log.read().decode(errors="replace").splitlines()
        if written:
            report.sections.append(
                (
                    f"{path.stem} log during this test (last {MAX_LINES} lines)",
                    "\n".join(written[-MAX_LINES:]),
                )
            )
