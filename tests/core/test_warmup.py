"""core/warmup.py: built once, waited for by everyone who needs it, failures raised to
every one of them, and whoever asked to hear of the end hears of it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.warmup import Warming, WarmupFailed


def test_every_caller_waits_for_the_one_build() -> None:
    release = threading.Event()
    builds: list[int] = []

    def build() -> str:
        builds.append(1)
        release.wait(timeout=30)
        return "detector"

    warming = Warming("the detector", build).start()
    with ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(warming.get) for _ in range(4)]
        assert not any(f.done() for f in waiting) and not warming.ready
        release.set()
        assert [f.result(timeout=30) for f in waiting] == ["detector"] * 4
    assert builds == [1]


def test_a_failed_build_is_raised_to_every_caller() -> None:
    def build() -> str:
        raise OSError("model file missing")

    warming = Warming("the detector", build).start()
    for _ in range(2):
        with pytest.raises(WarmupFailed, match="the detector could not be loaded: model file"):
            warming.get()
    assert isinstance(warming.failure, OSError)


def test_on_done_is_called_even_when_a_caller_began_the_build() -> None:
    """A job may ask for the value before the worker starts warming it."""
    warming = Warming("the detector", lambda: "detector")
    assert warming.get() == "detector"
    heard: list[str] = []
    warming.start(lambda w: heard.append(w.get()))
    assert heard == ["detector"]
