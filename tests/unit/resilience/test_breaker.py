"""CircuitBreaker against a simple model (hypothesis stateful), with a fake clock; plus the
async wrapper. No event loop runs the state machine and no real time passes."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from daemon.components import PermanentSinkError, SinkError
from daemon.resilience import AsyncCircuitBreaker, CircuitBreaker, CircuitOpenError

THRESHOLD = 3
TIMEOUT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker | AsyncCircuitBreaker) -> str:
    """The state as a plain str (so that mypy does not narrow it between steps)."""
    return breaker.state


class Model:
    """The specification, written as plainly as possible: a list of facts, no cleverness."""

    def __init__(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probe_out = False
        self.transitions: list[tuple[str, str]] = []

    def go(self, to: str) -> None:
        self.transitions.append((self.state, to))
        self.state = to

    def allow(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if now - self.opened_at >= TIMEOUT:
                self.go("half_open")
                self.probe_out = True
                return True
            return False
        if self.probe_out:
            return False
        self.probe_out = True
        return True

    def success(self) -> None:
        if self.state == "closed":
            self.failures = 0
        elif self.state == "half_open":
            self.probe_out = False
            self.go("closed")

    def failure(self, now: float) -> None:
        if self.state == "closed":
            self.failures += 1
            if self.failures == THRESHOLD:
                self.failures = 0
                self.opened_at = now
                self.go("open")
        elif self.state == "half_open":
            self.probe_out = False
            self.opened_at = now
            self.go("open")

    def release(self) -> None:
        if self.state == "half_open":
            self.probe_out = False


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.seen: list[tuple[str, str]] = []
        self.breaker = CircuitBreaker(
            THRESHOLD,
            TIMEOUT,
            clock=self.clock,
            on_change=lambda frm, to: self.seen.append((frm, to)),
        )
        self.model = Model()

    @rule(dt=st.sampled_from([0.0, 0.5, 4.0, 9.999, 10.0, 25.0]))
    def advance(self, dt: float) -> None:
        self.clock.now += dt

    @rule()
    def allow(self) -> None:
        assert self.breaker.allow() == self.model.allow(self.clock.now)

    @rule()
    def success(self) -> None:
        self.breaker.record_success()
        self.model.success()

    @rule()
    def failure(self) -> None:
        self.breaker.record_failure()
        self.model.failure(self.clock.now)

    @rule()
    def release(self) -> None:
        self.breaker.release()
        self.model.release()

    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state == self.model.state

    @invariant()
    def every_transition_reported_once(self) -> None:
        assert self.seen == self.model.transitions
        assert all(frm != to for frm, to in self.seen)

    @invariant()
    def opened_at_only_when_not_closed(self) -> None:
        if self.model.state == "closed":
            assert self.breaker.opened_at is None
        else:
            assert self.breaker.opened_at == self.model.opened_at


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase


def test_one_probe_at_a_time_while_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    assert state(breaker) == "open"
    assert not breaker.allow()
    clock.now += 5.0
    assert breaker.allow()  # the probe
    assert state(breaker) == "half_open"
    assert not breaker.allow()
    assert not breaker.allow()
    breaker.record_failure()
    assert state(breaker) == "open"
    assert not breaker.allow()  # the timeout restarted
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.allow()


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(3, 1.0, clock=Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert state(breaker) == "closed"
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "open"


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 1.0), (1, 0.0)])
def test_rejects_nonsense_settings(threshold: int, timeout: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, timeout)


async def test_async_wrapper_counts_sink_errors_and_fails_fast_when_open() -> None:
    clock = Clock()
    guard = AsyncCircuitBreaker(CircuitBreaker(2, 5.0, clock=clock))
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise SinkError("down")

    async def ok() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(SinkError):
            await guard.call(failing)
    assert state(guard) == "open"
    with pytest.raises(CircuitOpenError):
        await guard.call(failing)
    assert calls == 2  # not attempted while open
    clock.now += 5.0
    assert await guard.call(ok) == "ok"
    assert state(guard) == "closed"


async def test_async_wrapper_permanent_error_frees_the_probe_without_verdict() -> None:
    clock = Clock()
    guard = AsyncCircuitBreaker(CircuitBreaker(1, 5.0, clock=clock))

    async def fail() -> None:
        raise SinkError("down")

    async def refuse() -> None:
        raise PermanentSinkError("bad record")

    with pytest.raises(SinkError):
        await guard.call(fail)
    clock.now += 5.0
    with pytest.raises(PermanentSinkError):
        await guard.call(refuse)
    assert state(guard) == "half_open"
    assert guard.breaker.allow()  # the probe slot is free again


async def test_async_wrapper_does_not_count_permanent_errors_while_closed() -> None:
    guard = AsyncCircuitBreaker(CircuitBreaker(1, 5.0, clock=Clock()))

    async def refuse() -> None:
        raise PermanentSinkError("bad record")

    for _ in range(3):
        with pytest.raises(PermanentSinkError):
            await guard.call(refuse)
    assert state(guard) == "closed"
