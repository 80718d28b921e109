"""Something that takes seconds to build (a library to import, a model to load), built
once, in a background thread while the process gets on with starting; whoever needs it
waits for it.

    detector = Warming("the personal-data detector", build_detector)
    detector.start()          # the build begins in a thread of its own
    ...
    detector.get()            # waits until it is built; raises WarmupFailed if it failed

`get()` is the only way to the value: it returns only once the build has finished, so
code that needs the value cannot go ahead without it. Without `start()`, the first
`get()` builds it in the caller's thread (a test, a one-off command).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WarmupFailed(Exception):
    """The build failed; the message says what could not be loaded and why."""


class Warming(Generic[T]):
    """A value built once, by the first `start()` (in a background thread) or `get()`."""

    def __init__(self, what: str, build: Callable[[], T]) -> None:
        self.what = what  # for people: "the personal-data detector"
        self._build = build
        self._claimed = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._on_done: list[Callable[[Warming[T]], None]] = []
        self._value: T | None = None
        self._error: BaseException | None = None
        self._seconds: float | None = None

    @classmethod
    def loaded(cls, what: str, value: T) -> Warming[T]:
        """One already built: for callers that build the value themselves."""
        warming = cls(what, lambda: value)
        warming.get()
        return warming

    def start(self, on_done: Callable[[Warming[T]], None] | None = None) -> Warming[T]:
        """Begin the build in a background thread, unless it has begun already (a `get()`
        may have begun it). `on_done` runs once the build has finished or failed, in the
        thread that built it, or here if that was already so."""
        claimed = self._claim()
        if on_done is not None:
            self._when_done(on_done)
        if claimed:
            threading.Thread(target=self._run, name=f"warmup: {self.what}", daemon=True).start()
        return self

    def get(self) -> T:
        """The value: built here if nobody has started it, else waited for."""
        if self._claim():
            self._run()
        self._done.wait()
        if self._error is not None:
            raise WarmupFailed(f"{self.what} could not be loaded: {self._error}") from self._error
        return self._value  # type: ignore[return-value]  # set whenever _error is not

    def wait(self) -> None:
        """Until it is built or has failed (starting the build in the background if nobody
        has); unlike `get()`, a failure is not raised here."""
        self.start()
        self._done.wait()

    @property
    def ready(self) -> bool:
        """Built (or failed): `get()` will not wait."""
        return self._done.is_set()

    @property
    def failure(self) -> BaseException | None:
        return self._error

    @property
    def seconds(self) -> float | None:
        """How long the build took, once it has finished."""
        return self._seconds

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _when_done(self, on_done: Callable[[Warming[T]], None]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._on_done.append(on_done)
                return
        on_done(self)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self._value = self._build()
        except BaseException as exc:  # kept for get() to raise in every thread that waits
            self._error = exc
        finally:
            self._seconds = time.monotonic() - started
            with self._lock:
                self._done.set()
                callbacks, self._on_done = self._on_done, []
        for on_done in callbacks:
            on_done(self)
