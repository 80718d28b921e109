"""Our own CLI run as real child processes, the way an operator starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
START_TIMEOUT = 90.0  # seconds; presidio imports torch and transformers, slow on a busy machine


@dataclass
class ChatopsProcess:
    """One `chatops ...` child process, its output captured to a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, ready_line: str | None = None, ready_url: str | None = None) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log_file.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chatops {self.args[0]} exited:\n{self.log_text()[-3000:]}")
            if ready_line and ready_line in self.log_text()[offset:]:
                return
            if ready_url and _answers(ready_url):
                return
            time.sleep(0.1)
        raise RuntimeError(f"chatops {self.args[0]} did not start:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-job, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 20.0,
    interval: float = 0.1,
    message: str = "",
) -> T:
    """Poll until `predicate()` returns something truthy; return it, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
