"""Open-loop load of signed Slack Events API requests, sent from a process of its own.

Open loop: request i is sent at start + i/rate whatever happened to earlier ones, so a
slow listener faces the full offered rate instead of quietly slowing the generator down.
Latency runs from the *scheduled* send time, so any lag of the generator itself counts
against the result rather than hiding a stall (coordinated omission).

The generator runs in a child process so its JSON, HMAC and client work never shares an
event loop (or a GIL) with the servers it measures or with the orchestrating process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sandbox.slack_events import RESPONSE_TIMEOUT, USER_AGENT, sign

REPO = Path(__file__).resolve().parents[1]
START_DELAY = 0.05  # s between finishing the set-up and the first scheduled request
CHILD_GRACE = 30.0  # s beyond the schedule we wait for the child before giving up on it


@dataclass(frozen=True)
class LoadPlan:
    url: str
    signing_secret: str
    bodies: tuple[str, ...]  # measured requests: JSON envelopes, each with its own event_id
    warmup_bodies: tuple[str, ...]  # sent one by one first, not measured
    rate: float  # requests per second offered
    timeout: float = RESPONSE_TIMEOUT  # Slack abandons an event not answered in 3 s

    @property
    def seconds(self) -> float:
        return len(self.bodies) / self.rate


@dataclass(frozen=True)
class Sample:
    offset: float  # s from the first scheduled send to this one's scheduled send
    latency: float  # s from the scheduled send to the complete response (or the failure)
    lag: float  # s the generator was late sending it
    status: int  # HTTP status; 0 when no answer came (timeout, refused connection)


@dataclass(frozen=True)
class LoadResult:
    samples: tuple[Sample, ...]
    duration: float  # s from the first scheduled send to the last response
    warmup_statuses: tuple[int, ...]


def run_in_child(plan: LoadPlan) -> LoadResult:
    """Run `plan` in a child process (`python -m bench.loadgen`) and return its result.

    A plain subprocess rather than multiprocessing: a spawned child would re-import the
    benchmark's main module and with it the whole product, seconds of CPU per load.
    """
    budget = plan.seconds + plan.timeout * (1 + len(plan.warmup_bodies)) + CHILD_GRACE
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = child.communicate(json.dumps(asdict(plan)).encode(), timeout=budget)
    finally:
        if child.poll() is None:  # timed out, or we were interrupted
            child.kill()
            child.wait(timeout=5)
    if child.returncode != 0:
        raise RuntimeError(f"the load generator failed ({child.returncode}):\n{err.decode()}")
    return _result_from_json(json.loads(out))


def main() -> None:
    """The child's side: a plan as JSON on stdin, the result as JSON on stdout."""
    raw = json.load(sys.stdin)
    raw["bodies"] = tuple(raw["bodies"])
    raw["warmup_bodies"] = tuple(raw["warmup_bodies"])
    result = asyncio.run(run_load(LoadPlan(**raw)))
    json.dump(asdict(result), sys.stdout)


def _result_from_json(raw: dict[str, Any]) -> LoadResult:
    return LoadResult(
        samples=tuple(Sample(**sample) for sample in raw["samples"]),
        duration=raw["duration"],
        warmup_statuses=tuple(raw["warmup_statuses"]),
    )


async def run_load(plan: LoadPlan) -> LoadResult:
    # Signed up front so the schedule carries no HMAC work; the timestamp stays well
    # within the five minutes Bolt accepts.
    measured = [_signed(plan.signing_secret, body) for body in plan.bodies]
    warmup = [_signed(plan.signing_secret, body) for body in plan.warmup_bodies]
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    connector = aiohttp.TCPConnector(limit=0)  # no client-side cap on concurrency
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warmup_statuses = [await _post(session, plan.url, body) for body in warmup]
        samples, duration = await _open_loop(session, plan, measured)
    return LoadResult(tuple(samples), duration, tuple(warmup_statuses))


async def _open_loop(
    session: aiohttp.ClientSession, plan: LoadPlan, requests: list[tuple[bytes, dict[str, str]]]
) -> tuple[list[Sample], float]:
    loop = asyncio.get_running_loop()
    start = loop.time() + START_DELAY
    tasks: list[asyncio.Task[Sample]] = []
    for index, request in enumerate(requests):
        due = start + index / plan.rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(_timed_post(session, plan.url, request, start, due)))
    samples = await asyncio.gather(*tasks)
    return list(samples), loop.time() - start


async def _timed_post(
    session: aiohttp.ClientSession,
    url: str,
    request: tuple[bytes, dict[str, str]],
    start: float,
    due: float,
) -> Sample:
    loop = asyncio.get_running_loop()
    lag = loop.time() - due
    status = await _post(session, url, request)
    return Sample(offset=due - start, latency=loop.time() - due, lag=lag, status=status)


async def _post(
    session: aiohttp.ClientSession, url: str, request: tuple[bytes, dict[str, str]]
) -> int:
    body, headers = request
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return 0


def _signed(signing_secret: str, body: str) -> tuple[bytes, dict[str, str]]:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(signing_secret, timestamp, body),
    }
    return body.encode(), headers


if __name__ == "__main__":
    main()
