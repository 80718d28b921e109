"""What the request guard (bot/intake/request_guard.py) adds to a Slack ack.

    .venv/bin/python bench/request_guard.py [--requests 2000] [--smoke]

1. The signature check over the raw bytes, per request, beside slack_sdk's
   `SignatureVerifier` (what Bolt runs on every request anyway) on the same bodies.
2. The replay record a slash command or interaction costs: one INSERT (with the purge of
   a few expired rows) into `slack_seen_requests` on Postgres (BENCH_DATABASE_URL, or an
   embedded one in a temporary directory), one request at a time and from 8 tasks at
   once, beside a bare `SELECT 1` round trip on the same pool.

Writes what it prints to bench/results/request_guard.txt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from slack_sdk.signature import SignatureVerifier  # noqa: E402

from bench.scratch_db import bench_database  # noqa: E402
from bench.script import parser as script_parser  # noqa: E402
from bot.intake.request_guard import RequestGuard  # noqa: E402
from core.db import AsyncPool, open_async_pool  # noqa: E402

SECRET = "bench-signing-secret"  # noqa: S105
BODY_BYTES = 1_500  # a slash command's form is about this long
CONCURRENCY = 8


def _signed(body: bytes, timestamp: str) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best * 1e6


async def _latencies_ms(
    call: Callable[[int], Awaitable[object]], n: int, tasks: int
) -> list[float]:
    latencies: list[float] = []

    async def worker(offset: int) -> None:
        for i in range(offset, n, tasks):
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1e3)

    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms"


async def _replay_figures(requests: int) -> list[str]:
    lines = []
    # Set up and dropped blocking, as nothing else runs yet.
    with bench_database("bench_guard") as url:
        pool: AsyncPool = await open_async_pool(url, max_size=CONCURRENCY)
        guard = RequestGuard(SECRET, pool, body_timeout=10.0)
        now = str(int(time.time()))

        async def record(i: int) -> object:
            return await guard.first_sighting(now, f"v0={i:064x}")

        async def select_one(_: int) -> object:
            async with pool.connection() as conn:
                return await (await conn.execute("SELECT 1")).fetchone()

        try:
            for tasks in (1, CONCURRENCY):
                await _latencies_ms(select_one, 200, tasks)  # warm the pool
                baseline = await _latencies_ms(select_one, requests, tasks)
                first = tasks * 10 * requests  # pairs no earlier round used

                async def record_new(i: int, first: int = first) -> object:
                    return await record(i + first)

                recorded = await _latencies_ms(record_new, requests, tasks)
                lines.append(
                    f"replay record, {tasks} at a time: {_summary(recorded)}  "
                    f"(bare SELECT 1 on the same pool: {_summary(baseline)})"
                )
        finally:
            await pool.close()
    return lines


def main() -> int:
    parser = script_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    requests, calls = (20, 200) if args.smoke else (args.requests, 5_000)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"request guard, {os.cpu_count()} cores, load avg at start {load}"]
    body = (b"token=x&team_id=T0&command=%2Fagent&text=pause&" * 40)[:BODY_BYTES]
    timestamp = str(int(time.time()))
    signature = _signed(body, timestamp)
    guard = RequestGuard(SECRET, pool=None, body_timeout=10.0)  # type: ignore[arg-type]  # signed() needs no pool
    verifier = SignatureVerifier(SECRET)
    assert guard.signed(body, timestamp, signature)
    ours = _per_call_us(lambda: guard.signed(body, timestamp, signature), calls)
    bolt = _per_call_us(lambda: verifier.is_valid(body, timestamp, signature), calls)
    lines.append(
        f"signature check, {BODY_BYTES}-byte body: {ours:.1f} µs per request "
        f"(slack_sdk's SignatureVerifier, which Bolt also runs: {bolt:.1f} µs)"
    )
    lines += asyncio.run(_replay_figures(requests))
    lines.append(f"load avg at end {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    if not args.smoke:  # a smoke run's tiny figures are not results
        (REPO / "bench" / "results" / "request_guard.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
