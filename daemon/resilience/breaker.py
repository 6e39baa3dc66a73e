"""Circuit breaker: a pure, synchronous state machine plus a thin async wrapper.

Why: when a sink is down for longer than a retry can bridge, every write would still pay the full
retry budget before failing, and the whole pipeline would crawl at the speed of timeouts. The
breaker notices a run of failures and fails fast for `reset_timeout_s` (the guarded sink spools
meanwhile), then lets exactly one probe through to test the water.

    closed ──(failure_threshold consecutive failures)──▶ open
    open ──(reset_timeout_s passed, on the next allow())──▶ half_open  (that allow() is the probe)
    half_open ──(probe succeeded)──▶ closed
    half_open ──(probe failed)──▶ open  (the timeout starts again)

The machine knows no event loop and reads time only through the injected `clock`, so it is tested
step by step with a fake clock. Results that arrive while open (calls let through before it
opened) change nothing. `release()` ends an allowed call without a verdict (cancelled, or an error
that says nothing about the sink's health) so a half-open breaker can probe again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from daemon.components import PermanentSinkError, SinkError

T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]
OnChange = Callable[[BreakerState, BreakerState], None]


class CircuitOpenError(SinkError):
    """The breaker did not allow the call: the sink is considered down; nothing was attempted."""


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        reset_timeout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout_s <= 0:
            raise ValueError(f"reset_timeout_s must be > 0, got {reset_timeout_s}")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._failures = 0  # consecutive, while closed
        self._opened_at: float | None = None
        self._probing = False  # half-open and the one probe is out

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    @property
    def opened_at(self) -> float | None:
        """Clock time of the latest transition to open, while open or half-open; else None."""
        return self._opened_at

    def allow(self) -> bool:
        """May a call go to the sink now? While half-open only the probe may; an open breaker
        whose timeout has passed turns half-open and this call becomes the probe."""
        if self._state == "closed":
            return True
        if self._state == "open":
            assert self._opened_at is not None
            if self._clock() - self._opened_at < self.reset_timeout_s:
                return False
            self._transition("half_open")
            self._probing = True
            return True
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        if self._state == "closed":
            self._failures = 0
        elif self._state == "half_open":
            self._probing = False
            self._opened_at = None
            self._transition("closed")

    def record_failure(self) -> None:
        if self._state == "closed":
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()
        elif self._state == "half_open":
            self._open()

    def trip(self) -> None:
        """Open now, whatever the count: the sink is stuck (a write ran past its deadline), not
        flaky, and another try would only wait as long again."""
        if self._state != "open":
            self._open()

    def release(self) -> None:
        """An allowed call ended without a verdict: free the half-open probe slot."""
        if self._state == "half_open":
            self._probing = False

    def _open(self) -> None:
        self._failures = 0
        self._probing = False
        self._opened_at = self._clock()
        self._transition("open")

    def _transition(self, to: BreakerState) -> None:
        frm, self._state = self._state, to
        if self._on_change is not None:
            self._on_change(frm, to)


class AsyncCircuitBreaker:
    """Runs coroutines through a `CircuitBreaker`.

    A raised exception in `failure_on` counts as a failure unless it is also in `neutral`
    (a `PermanentSinkError` says the sink answered, not that it is down); any other exception or a
    cancellation releases the call without a verdict.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        failure_on: tuple[type[BaseException], ...] = (SinkError,),
        neutral: tuple[type[BaseException], ...] = (PermanentSinkError,),
    ) -> None:
        self.breaker = breaker
        self._failure_on = failure_on
        self._neutral = neutral

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`await fn()` if the breaker allows it, else raise `CircuitOpenError`."""
        breaker = self.breaker
        if not breaker.allow():
            raise CircuitOpenError(f"circuit {breaker.state}")
        try:
            result = await fn()
        except BaseException as exc:
            if isinstance(exc, self._failure_on) and not isinstance(exc, self._neutral):
                breaker.record_failure()
            else:
                breaker.release()
            raise
        breaker.record_success()
        return result
