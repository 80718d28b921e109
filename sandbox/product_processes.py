"""The product as `chatops sandbox` runs it: `chatops serve`, `worker` and `smtp` as child
processes, started exactly as an operator starts them, each logging to its own file.

Each child runs in a session of its own, so Ctrl-C in the terminal reaches only the sandbox,
which stops the product first and the database and queue after it (the terminal would
otherwise signal them all at once, and the product would log its database vanishing).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StartupError

CHILD_START_TIMEOUT = 120.0  # seconds; the worker imports torch, slow on a busy machine
CHILD_STOP_TIMEOUT = 10.0  # seconds before a child that ignores SIGTERM is killed
STOP_POLL = 0.05  # seconds between checks that the children have exited
LOG_TAIL = 2_000  # characters of a failed child's log shown to the person starting it


class StoppedDuringStart(Exception):
    """Ctrl-C (or SIGTERM) arrived while the sandbox was still starting: not an error."""


@dataclass
class ChildProcess:
    """One `chatops ...` process; its output goes to a log file."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "bot.cli", *self.args],
                env=dict(env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C is the sandbox's to handle
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, hurry: threading.Event | None = None) -> None:
        stop_all([self], hurry)


def stop_all(children: Sequence[ChildProcess], hurry: threading.Event | None = None) -> None:
    """SIGTERM to every child at once (their grace periods overlap), then SIGKILL to any
    still running after `CHILD_STOP_TIMEOUT`, or as soon as `hurry` is set."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + CHILD_STOP_TIMEOUT
    while any(not c.exited() for c in children if c.process is not None):
        if time.monotonic() > deadline or (hurry is not None and hurry.is_set()):
            break
        time.sleep(STOP_POLL)
    for child in children:
        if child.process is not None and child.process.poll() is None:
            waited = CHILD_STOP_TIMEOUT - max(0.0, deadline - time.monotonic())
            print(f"chatops {child.name} had not stopped after {waited:.0f} s: killed it.")
            child.kill()


@dataclass(frozen=True)
class ProductProcesses:
    serve: ChildProcess
    worker: ChildProcess
    smtp: ChildProcess
    serve_port: int

    @property
    def all(self) -> tuple[ChildProcess, ChildProcess, ChildProcess]:
        return (self.serve, self.worker, self.smtp)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}/slack/events"

    def start(self, env: Mapping[str, str]) -> None:
        """Start all three side by side: each spends seconds importing its libraries."""
        for child in self.all:
            child.start(env)

    def wait_for_serve(self, stopping: threading.Event) -> None:
        healthz = f"http://127.0.0.1:{self.serve_port}/healthz"
        wait_until(self.serve, stopping, lambda: answers(healthz))

    def wait_for_worker_and_smtp(self, stopping: threading.Event) -> None:
        wait_until(self.worker, stopping, lambda: "worker.started" in self.worker.log_text())
        wait_until(self.smtp, stopping, lambda: "smtp.ready" in self.smtp.log_text())

    def check_running(self) -> None:
        for child in self.all:
            if child.exited():
                raise StartupError(f"chatops {child.name} stopped:\n{child.log_text()[-LOG_TAIL:]}")

    def stop(self, hurry: threading.Event | None = None) -> None:
        stop_all(self.all, hurry)


def product_processes(logs: Path, serve_port: int) -> ProductProcesses:
    return ProductProcesses(
        serve=ChildProcess("serve", ["serve", "--port", str(serve_port)], logs / "serve.log"),
        worker=ChildProcess("worker", ["worker"], logs / "worker.log"),
        smtp=ChildProcess("smtp", ["smtp"], logs / "smtp.log"),
        serve_port=serve_port,
    )


def wait_until(child: ChildProcess, stopping: threading.Event, started: Callable[[], bool]) -> None:
    deadline = time.monotonic() + CHILD_START_TIMEOUT
    while not started():
        if child.exited():
            raise StartupError(f"chatops {child.name} exited:\n{child.log_text()[-LOG_TAIL:]}")
        if stopping.is_set():
            raise StoppedDuringStart(f"stopped before chatops {child.name} was up")
        if time.monotonic() > deadline:
            raise StartupError(f"chatops {child.name} did not start; see {child.log_path}")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - localhost
            return bool(response.status == 200)
    except OSError:
        return False
