"""What the sandbox Web API heard, and the failures a test asks it to fake.

`RequestLog` records every call. `FaultInjector` makes upcoming calls of a method fail the
way Slack fails (an error code, a 429 with ``Retry-After``) or answer late: a delayed call
is carried out at once (the message is posted, its events go out) but its HTTP response is
held back, so a test can kill the caller between Slack's effect and the caller learning of
it. Held responses are abandoned (the connection dropped) when the server stops.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from sandbox.slack_types import JsonDict


@dataclass
class ApiCall:
    """One request the Web API received, and what it answered."""

    method: str
    params: JsonDict  # query, form and JSON body merged; the token is kept apart
    token: str | None
    http_method: str
    timestamp: float
    status: int = 200
    response: JsonDict = field(default_factory=dict)
    held_for: float = 0.0  # seconds the response was held back by `FaultInjector.delay_next`

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


class RequestLog:
    """Every Web API call in arrival order; safe to read from any thread."""

    def __init__(self) -> None:
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()

    def record(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self._lock:
            return [c for c in self._calls if method in (None, c.method)]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@dataclass
class Fault:
    """A failure to answer instead of the real result, ``remaining`` more times."""

    method: str  # an API method name, or "*" for any method
    error: str
    status: int
    retry_after: int | None
    remaining: int

    def headers(self) -> dict[str, str]:
        if self.status == 429 and self.retry_after is not None:
            return {"Retry-After": str(self.retry_after)}
        return {}


@dataclass
class Delay:
    """Hold back the response of ``method`` by ``seconds``, ``remaining`` more times."""

    method: str  # an API method name, or "*" for any method
    seconds: float
    remaining: int


class FaultInjector:
    """Makes upcoming calls of a method fail or answer late; thread-safe to arrange.

    `hold` and `abandon_held` run on the server's event loop.
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._delays: list[Delay] = []
        self._held: set[asyncio.Task[object]] = set()
        self._lock = threading.Lock()

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Fail the next ``times`` calls of ``method`` ("*" for any) with ``error``.

        ``status`` defaults to 429 for ``ratelimited`` (with ``Retry-After: retry_after``)
        and to 200 for every other error, which is how Slack reports them.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        with self._lock:
            self._faults.append(Fault(method, error, status, retry_after, times))

    def take(self, method: str) -> Fault | None:
        """The fault to apply to this call, if any, counting it as used."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (method, "*"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``method`` but answer each ``seconds`` late."""
        with self._lock:
            self._delays.append(Delay(method, seconds, times))

    def take_delay(self, method: str) -> float:
        """Seconds to hold this call's response (0 for none), counting the delay as used."""
        with self._lock:
            for delay in self._delays:
                if delay.method in (method, "*"):
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self._delays.remove(delay)
                    return delay.seconds
        return 0.0

    async def hold(self, seconds: float) -> None:
        """Wait before answering; `abandon_held` cuts the wait short by cancelling it."""
        task = asyncio.current_task()
        if task is None:  # not inside a task: nothing could cancel the wait
            await asyncio.sleep(seconds)
            return
        self._held.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._held.discard(task)

    def abandon_held(self) -> int:
        """Drop every response still held back (the server is stopping); returns how many."""
        held = list(self._held)
        for task in held:
            task.cancel()
        return len(held)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
