"""Run every benchmark in `bench/`, one after another; fail if any fails.

    .venv/bin/python -m bench.run_all --smoke          # what `make test` runs
    .venv/bin/python -m bench.run_all [NAME ...]       # full runs (`make bench`)

A benchmark is any `bench/*.py` with a `__main__` block, except the helpers that
benchmarks start as child processes: so a new script is run here without being listed,
and one that no longer runs, or has no `--smoke`, fails `make test`; so does a module in
bench/ that imports from tests/ (shared set-up lives in testbed/). With `--smoke`, one
embedded Postgres serves all the scripts (`BENCH_DATABASE_URL`, each makes its own
database on it); full runs leave each script its own server, whose CPU they count as
theirs. Where no Redis answers at `BENCH_REDIS_URL` (default 127.0.0.1:6379), a
`redis-server` is started for the run, as the test suite does.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from bench.script import load_average  # noqa: E402
from sandbox.embedded_postgres import start_embedded_postgres  # noqa: E402

BENCH = REPO / "bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
# Not benchmarks: helpers the benchmarks start as child processes (the baseline Bolt app,
# the bare SMTP server, the load generator), and this runner.
NOT_BENCHMARKS = {"bare_bolt", "bare_smtp", "loadgen", "run_all"}
MAIN_BLOCK = re.compile(r'^if __name__ == "__main__":', re.MULTILINE)
# Benchmarks share set-up with the tests through testbed/, never by importing the suite.
IMPORTS_TESTS = re.compile(r"^\s*(?:from|import)\s+tests(?:\.|\s|$)", re.MULTILINE)
SMOKE_LIMIT = 300.0  # s per script; a smoke run takes seconds to a minute on 2 busy cores
FULL_LIMIT = 3600.0
TAIL = 4000  # characters of a failed script's output to show


def benchmarks() -> list[str]:
    """The names of the benchmark scripts in bench/, sorted."""
    return sorted(
        path.stem
        for path in BENCH.glob("*.py")
        if path.stem not in NOT_BENCHMARKS and MAIN_BLOCK.search(path.read_text())
    )


def importing_tests() -> list[str]:
    """The bench/ modules that import from tests/."""
    return sorted(p.name for p in BENCH.glob("*.py") if IMPORTS_TESTS.search(p.read_text()))


def main() -> int:
    known = benchmarks()
    args = _parse(known)
    chosen = args.names or known
    print(f"benchmarks{' (smoke)' if args.smoke else ''}: {', '.join(chosen)}", flush=True)
    print(f"load avg at start {load_average()}", flush=True)
    failed = []
    with ExitStack() as stack:
        env = dict(os.environ)
        if args.smoke and "BENCH_DATABASE_URL" not in env:
            env["BENCH_DATABASE_URL"] = stack.enter_context(_shared_postgres())
        if "BENCH_REDIS_URL" not in env and not _redis_answers(DEFAULT_REDIS_URL):
            env["BENCH_REDIS_URL"] = stack.enter_context(_own_redis())
        for name in chosen:
            if not _run(name, args.smoke, env):
                failed.append(name)
    summary = f"{len(chosen) - len(failed)} of {len(chosen)} benchmarks ran"
    print(summary + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    offenders = importing_tests()
    if offenders:
        listed = ", ".join(f"bench/{name}" for name in offenders)
        print(f"FAILED: importing from tests/ (take it from testbed/): {listed}")
    return 1 if failed or offenders else 0


def _parse(known: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each script's short mode")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(known))
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (there are {', '.join(known)})")
    return args


def _run(name: str, smoke: bool, env: dict[str, str]) -> bool:
    command = [sys.executable, str(BENCH / f"{name}.py"), *(["--smoke"] if smoke else [])]
    print(f"\n=== bench/{name}.py{' --smoke' if smoke else ''}", flush=True)
    started = time.monotonic()
    limit = SMOKE_LIMIT if smoke else FULL_LIMIT
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or ""
        print((output.decode(errors="replace") if isinstance(output, bytes) else output)[-TAIL:])
        print(f"--- bench/{name}.py did not finish within {limit:.0f} s: FAILED", flush=True)
        return False
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print((done.stdout + done.stderr)[-TAIL:])
        print(f"--- bench/{name}.py exited with {done.returncode} after {seconds:.0f} s: FAILED")
        return False
    print(done.stdout if not smoke else _last_lines(done.stdout, 12), end="")
    print(f"--- bench/{name}.py ran in {seconds:.0f} s", flush=True)
    return True


def _last_lines(text: str, count: int) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[-count:])


@contextmanager
def _shared_postgres() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="chatops-bench-pg-") as workdir:
        url, server = start_embedded_postgres(Path(workdir) / "postgres")
        try:
            yield url
        finally:
            server.cleanup()


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def _own_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(f"no Redis answers at {DEFAULT_REDIS_URL} and redis-server is missing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="chatops-bench-redis-") as workdir:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(url):
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
