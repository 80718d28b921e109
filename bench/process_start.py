"""Process start benchmark: from launching `chatops serve`, `worker`, `smtp` and `migrate`
to each being ready, on this machine.

    .venv/bin/python bench/process_start.py [--runs 5] [--smoke]

Each command is started `--runs` times in turn (interleaved, so the machine's noise
hits all of them alike) against a migrated database, Redis and the Slack emulator, as an
operator starts them. Ready means: `serve` answers `/readyz` (Postgres and Redis
reachable), `worker` has logged `worker.started` (its consumers run), `smtp` has logged
`smtp.ready` (it accepts connections), and `migrate` has exited 0 with nothing left to
apply (a deploy's usual case; a fresh database is timed once too, for information).
Reported: the median and the worst wall time, the CPU time the process had used by then
(steadier on a shared machine), and whether it imported presidio, transformers, spaCy
or torch on the way (one more run each with `python -X importtime`): serve, smtp and
migrate screen no text, and a run in which they import any of them fails.

The worker takes jobs before its PII detector has loaded (it loads in the background, and
a job that screens text waits for it), so for the worker the time from launch to that
detector loaded (its `worker.warm` line) is reported too, as "screen loaded": the
earliest a job's text can be screened and sent on to the model.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import cpu  # noqa: E402
from bench.environment import Services, bench_services, fresh_database  # noqa: E402
from bench.script import Report, load_average, parser  # noqa: E402
from testbed.stack import free_port  # noqa: E402

# Issue 18's aims, seconds from launch to ready on an idle machine.
AIMS = {"serve": 2.0, "worker": 4.0, "smtp": 2.0, "migrate": 1.5}
HEAVY = ("presidio_analyzer", "transformers", "spacy", "torch")
# Processes that never screen text for personal data: what they import is checked.
SCREENS_NOTHING = ("serve", "smtp", "migrate")
START_LIMIT = 120.0  # s before a start counts as failed
POLL = 0.01  # s between readiness checks


@dataclass(frozen=True)
class Start:
    wall: float  # s from launch to ready
    cpu: float  # CPU-seconds the process had used when it was ready
    others: float  # share of the cores other processes used meanwhile
    screen: float | None = None  # s from launch to the worker's PII detector loaded


def main() -> int:
    made = parser(__doc__.splitlines()[0])
    made.add_argument("--runs", type=int, default=5, help="starts of each command (5)")
    args = made.parse_args()
    runs = 1 if args.smoke else args.runs
    report = Report("process_start", "process start benchmark", args.smoke)
    with ExitStack() as stack:
        services = stack.enter_context(bench_services())
        env = services.product_env()
        starts: dict[str, list[Start]] = {name: [] for name in AIMS}
        heavy: dict[str, dict[str, float]] = {}
        for _ in range(runs):
            for name in AIMS:
                # A smoke run's one start also lists the imports (its time is not judged);
                # a full run lists them in a start of its own, not timed.
                start, imported = _start(name, services, env, importtime=args.smoke)
                starts[name].append(start)
                heavy[name] = imported
        if not args.smoke:
            for name in AIMS:
                heavy[name] = _start(name, services, env, importtime=True)[1]
        fresh = _fresh_migrate(services, env)
    report.add(
        f"setup: {services.description}; {runs} start(s) of each, interleaved",
        "",
        f"{'command':<10}{'median s':>10}{'worst s':>9}{'CPU s':>8}{'others CPU':>12}"
        f"  {'aim':>6}  imports on the way",
        "-" * 90,
    )
    screens = [t.screen for t in starts["worker"] if t.screen is not None]
    for name, timings in starts.items():
        median = statistics.median(t.wall for t in timings)
        report.add(
            f"{name:<10}{median:>10.2f}{max(t.wall for t in timings):>9.2f}"
            f"{statistics.median(t.cpu for t in timings):>8.2f}"
            f"{max(t.others for t in timings):>12.0%}  {AIMS[name]:>5g}s  {_listed(heavy[name])}"
        )
    if screens:
        report.add(
            f"worker screen loaded (PII detector; jobs wait for it): median "
            f"{statistics.median(screens):.2f} s, worst {max(screens):.2f} s after launch"
        )
    report.add(
        f"migrate on a fresh database (all migrations): {fresh:.2f} s",
        f"(load avg after the starts: {load_average()})",
        "",
        "Aims (median start to ready)",
    )
    for name, timings in starts.items():
        median = statistics.median(t.wall for t in timings)
        report.aim(median <= AIMS[name], f"chatops {name} <= {AIMS[name]:g} s: {median:.2f} s")
    for name in SCREENS_NOTHING:
        report.check(
            not heavy[name],
            f"chatops {name} screens no text, so imports none of {', '.join(HEAVY)}",
        )
    return report.finish()


def _start(
    name: str, services: Services, env: dict[str, str], *, importtime: bool = False
) -> tuple[Start, dict[str, float]]:
    """Launch `chatops name`, wait until it is ready, stop it; how long it took, and (with
    `importtime`) which heavy libraries it imported on the way."""
    log_path = services.log_dir / f"start-{name}-{time.monotonic_ns()}.log"
    command, ready = _command(name, env, log_path)
    if importtime:
        command[1:1] = ["-X", "importtime"]
    markers = (str(services.workdir), "redis-server")
    before, children_before = cpu.sample(markers), _children_cpu()
    with log_path.open("ab") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        while not ready(process):
            if process.poll() is not None and name != "migrate":
                raise RuntimeError(f"chatops {name} exited:\n{log_path.read_text()[-2000:]}")
            if time.monotonic() - started > START_LIMIT:
                raise RuntimeError(f"chatops {name} was not ready in {START_LIMIT:.0f} s")
            time.sleep(POLL)
        wall = time.monotonic() - started
        used = _cpu_seconds(process, children_before)
        others = cpu.others_share(before, cpu.sample(markers))
        # Not in a run listing imports: those after ready would be listed as on the way.
        screen = None if importtime or name != "worker" else _screen_loaded(log_path, started)
    finally:
        _stop(process)
    imported = _imported(log_path.read_text(errors="replace")) if importtime else {}
    return Start(wall, used, others, screen), imported


def _screen_loaded(log_path: Path, started: float) -> float:
    """Seconds from launch until the worker logged its PII detector loaded."""
    while not any(
        b"worker.warm" in line and b"personal-data detector" in line
        for line in log_path.read_bytes().splitlines()
    ):
        if b"worker.warmup_failed" in log_path.read_bytes():
            raise RuntimeError(f"the worker's detector failed:\n{log_path.read_text()[-2000:]}")
        if time.monotonic() - started > START_LIMIT:
            raise RuntimeError(f"the worker's detector did not load in {START_LIMIT:.0f} s")
        time.sleep(POLL)
    return time.monotonic() - started


def _command(
    name: str, env: dict[str, str], log_path: Path
) -> tuple[list[str], Callable[[subprocess.Popen[bytes]], bool]]:
    base = [sys.executable, "-m", "bot.cli", name]
    if name == "serve":
        port = free_port()
        return [*base, "--port", str(port)], lambda _p: _answers(f"http://127.0.0.1:{port}/readyz")
    if name == "smtp":
        return [*base, "--host", "127.0.0.1", "--port", str(free_port())], _logged(
            log_path, "smtp.ready"
        )
    if name == "worker":
        return base, _logged(log_path, "worker.started")
    return base, _exited_ok(name)


def _logged(log_path: Path, line: str) -> Callable[[subprocess.Popen[bytes]], bool]:
    def ready(_process: subprocess.Popen[bytes]) -> bool:
        return line.encode() in log_path.read_bytes()

    return ready


def _exited_ok(name: str) -> Callable[[subprocess.Popen[bytes]], bool]:
    def ready(process: subprocess.Popen[bytes]) -> bool:
        code = process.poll()
        if code not in (None, 0):
            raise RuntimeError(f"chatops {name} exited with {code}")
        return code == 0

    return ready


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - localhost
            return bool(response.status == 200)
    except OSError:
        return False


def _cpu_seconds(process: subprocess.Popen[bytes], children_before: float) -> float:
    """CPU time of the process: from /proc while it runs; once it has exited (and was
    reaped), what reaped children used since `children_before`."""
    if process.returncode is None:
        return cpu.process_seconds(process.pid)
    return _children_cpu() - children_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _listed(imported: dict[str, float]) -> str:
    found = [f"{module} {seconds:.2f} s" for module, seconds in imported.items()]
    return ", ".join(found) if found else "none of presidio, transformers, spaCy, torch"


def _imported(importtime: str) -> dict[str, float]:
    """The heavy packages in `python -X importtime` output, with their cumulative time."""
    found: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        module = fields[2].strip()
        if module in HEAVY:
            found[module] = max(found.get(module, 0.0), int(fields[1]) / 1e6)
    return found


def _fresh_migrate(services: Services, env: dict[str, str]) -> float:
    """`chatops migrate` on an empty database: every migration applied."""
    with fresh_database(services.server_url, migrate=False) as url:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "migrate"],
            env={**os.environ, **env, "DATABASE_URL": url},
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        return time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
