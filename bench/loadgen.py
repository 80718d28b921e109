"""Open-loop load of signed Slack Events API requests, sent from a process of its own.

Open loop: request i is sent at start + i/rate whatever happened to earlier ones, so a
slow listener faces the full offered rate instead of quietly slowing the generator down.
Latency runs from the *scheduled* send time, so any lag of the generator itself counts
against the result rather than hiding a stall (coordinated omission).

The generator runs in a spawned child so its JSON, HMAC and client work never shares an
event loop (or a GIL) with the servers it measures or with the orchestrating process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

import aiohttp

from sandbox.slack_events import RESPONSE_TIMEOUT, USER_AGENT, sign

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
    """Run `plan` in a spawned process and return its result; the child never outlives us."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, plan), daemon=True)
    child.start()
    sender.close()
    try:
        budget = plan.seconds + plan.timeout * (1 + len(plan.warmup_bodies)) + CHILD_GRACE
        if not receiver.poll(budget):
            raise RuntimeError(f"the load generator gave no result within {budget:.0f}s")
        outcome: LoadResult | str = receiver.recv()
    finally:
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
    if isinstance(outcome, str):
        raise RuntimeError(f"the load generator failed:\n{outcome}")
    return outcome


def _child_main(sender: Connection, plan: LoadPlan) -> None:
    try:
        outcome: LoadResult | str = asyncio.run(run_load(plan))
    except BaseException:
        outcome = traceback.format_exc()
    sender.send(outcome)
    sender.close()


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
