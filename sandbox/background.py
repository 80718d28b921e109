"""Run an aiohttp application on its own event loop in a daemon thread.

The emulators are asyncio servers, but the processes that host them (pytest, the
benchmark, a synchronous CLI) are not. This gives them a real listening socket and a
way to run coroutines on the server's loop from any thread. `ServedEmulator` (start and
stop, or `with`) and `ApiEmulator` (plus the log of requests received and injected
failures) are what every API emulator (HubSpot, Zendesk, Gmail, Google Calendar) would
otherwise repeat.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")

START_TIMEOUT = 10.0  # seconds


class BackgroundServer:
    """An aiohttp application served on 127.0.0.1 from a background thread."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start listening and return the base URL (``http://host:port``)."""
        self._thread.start()
        self.port = self.call(self._start())
        return self.url

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=START_TIMEOUT)
        self._loop.close()

    async def _start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp exposes no public accessor for the bound port
        assert isinstance(server, asyncio.Server)
        port: int = server.sockets[0].getsockname()[1]
        return port


class StartStop:
    """A server run with `start()`/`stop()`, or as `with Server() as server:` (started on
    entry, stopped on exit)."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ServedEmulator(StartStop):
    """An emulator served by a `BackgroundServer`: `start()`/`stop()`, or `with Emulator()`."""

    def __init__(self, app: web.Application) -> None:
        self._server = BackgroundServer(app)

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@dataclass(frozen=True)
class Fault:
    """An error the next request answers: `status` (with `Retry-After` seconds for a 429
    or 503), after doing its write when `after_commit`, which is what a timeout after the
    service accepted a write looks like to the client."""

    status: int
    retry_after: float | None = None
    after_commit: bool = False


class FaultQueue:
    """Injected failures, taken one per request in the order they were added; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True)
class LoggedRequest:
    """One request an API emulator received, as tests and the sandbox inspect it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, or None (none sent, or not JSON: the handler answers that)
    idempotency_key: str | None  # the Idempotency-Key header, where a client sends one


async def logged_request(request: web.Request) -> LoggedRequest:
    raw = await request.read() if request.can_read_body else b""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return LoggedRequest(
        request.method,
        request.path,
        dict(request.query),
        body,
        request.headers.get("Idempotency-Key"),
    )


class ApiEmulator(ServedEmulator):
    """A served API emulator that logs every request it receives (`requests`, for tests
    and the sandbox to inspect) and answers the failures injected with `fail_next`.

    Subclasses build their application first (its middleware awaits `_record` and takes
    `_faults`), then call this initialiser with it; `_lock` also guards their own state.
    """

    def __init__(self, app: web.Application) -> None:
        self.requests: list[LoggedRequest] = []
        self._faults = FaultQueue()
        self._lock = threading.Lock()
        super().__init__(app)

    def fail_next(
        self, status: int, *, retry_after: float | None = None, after_commit: bool = False
    ) -> None:
        """The next request answers `status`; with `after_commit`, after doing its write."""
        self._faults.add(Fault(status, retry_after, after_commit))

    def reset(self) -> None:
        self._faults.clear()
        with self._lock:
            self.requests.clear()

    async def _answer_or_fault(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        error: Callable[[Fault], Exception],
    ) -> web.StreamResponse:
        """`handler`'s answer, unless a fault was injected: then its `error` is raised
        instead, before the handler runs or, with `after_commit`, after it did its write."""
        fault = self._faults.take()
        if fault is not None and not fault.after_commit:
            raise error(fault)
        response = await handler(request)
        if fault is not None:
            raise error(fault)
        return response

    async def _record(self, request: web.Request) -> None:
        logged = await logged_request(request)
        with self._lock:
            self.requests.append(logged)
