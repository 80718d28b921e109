"""The circuit breaker stops calls to a failing provider and lets one trial through later."""

from __future__ import annotations

from core.llm.circuit import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_recovers_after_a_good_trial() -> None:
    """Three failures open it; after the cool-down one trial call is allowed and closes it."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=10.0, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()

    clock.now = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow(), "only one trial call at a time while half-open"
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_a_failed_trial_opens_it_again() -> None:
    """A half-open circuit whose trial fails goes back to open for another cool-down."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now = 9.0
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    """Failures must be consecutive to open the circuit."""
    breaker = CircuitBreaker(failure_threshold=2, reset_after=5.0)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"
