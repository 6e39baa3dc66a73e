"""retry_call: bounded attempts, capped exponential backoff with full jitter, the test switch."""

from __future__ import annotations

import pytest

from daemon.components import PermanentSinkError, SinkError
from daemon.resilience import backoff_delay, fast_retries, is_testing, retry_call


class Flaky:
    """Fails with `error` the first `failures` calls, then returns the call number."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or SinkError("down")
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_succeeds_after_transient_failures_with_doubling_backoff() -> None:
    fn, sleep = Flaky(3), Sleeps()
    result = await retry_call(
        fn, attempts=5, base_delay_s=0.1, max_delay_s=10.0, jitter=False, sleep=sleep
    )
    assert result == 4
    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4])


async def test_backoff_is_capped_at_max_delay() -> None:
    fn, sleep = Flaky(5), Sleeps()
    await retry_call(fn, attempts=6, base_delay_s=1.0, max_delay_s=3.0, jitter=False, sleep=sleep)
    assert sleep.delays == pytest.approx([1.0, 2.0, 3.0, 3.0, 3.0])


async def test_full_jitter_scales_each_delay_by_rng() -> None:
    fn, sleep = Flaky(2), Sleeps()
    draws = iter([0.5, 0.25])
    await retry_call(
        fn, attempts=3, base_delay_s=1.0, max_delay_s=10.0, sleep=sleep, rng=lambda: next(draws)
    )
    assert sleep.delays == pytest.approx([0.5, 0.5])  # 1.0 * 0.5, 2.0 * 0.25


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    fn, sleep = Flaky(10), Sleeps()
    with pytest.raises(SinkError, match="down"):
        await retry_call(fn, attempts=3, base_delay_s=0.1, max_delay_s=1.0, sleep=sleep)
    assert fn.calls == 3
    assert len(sleep.delays) == 2  # no sleep after the last attempt


async def test_permanent_error_is_not_retried() -> None:
    fn, sleep = Flaky(10, PermanentSinkError("bad record")), Sleeps()
    with pytest.raises(PermanentSinkError):
        await retry_call(fn, attempts=5, base_delay_s=0.1, max_delay_s=1.0, sleep=sleep)
    assert fn.calls == 1
    assert sleep.delays == []


async def test_errors_outside_retry_on_propagate_at_once() -> None:
    fn = Flaky(10, KeyError("bug"))
    with pytest.raises(KeyError):
        await retry_call(fn, attempts=5, base_delay_s=0.1, max_delay_s=1.0, sleep=Sleeps())
    assert fn.calls == 1


async def test_total_time_bound_stops_retrying() -> None:
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        now[0] += delay

    fn = Flaky(10)
    with pytest.raises(SinkError):
        await retry_call(
            fn,
            attempts=10,
            base_delay_s=1.0,
            max_delay_s=100.0,
            jitter=False,
            timeout_s=3.5,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert sleeps == [1.0, 2.0]  # a third backoff (4 s) would end past 3.5 s
    assert fn.calls == 3


async def test_fast_retries_keeps_attempts_and_skips_sleeping() -> None:
    fn, sleep = Flaky(4), Sleeps()
    assert not is_testing()
    with fast_retries():
        assert is_testing()
        await retry_call(fn, attempts=5, base_delay_s=60.0, max_delay_s=60.0, sleep=sleep)
    assert not is_testing()
    assert fn.calls == 5
    assert sleep.delays == []


def test_backoff_delay_function() -> None:
    assert backoff_delay(0, base_delay_s=0.05, max_delay_s=2.0, jitter=False) == 0.05
    assert backoff_delay(3, base_delay_s=0.05, max_delay_s=2.0, jitter=False) == 0.4
    assert backoff_delay(99, base_delay_s=0.05, max_delay_s=2.0, jitter=False) == 2.0
    assert backoff_delay(2, base_delay_s=1.0, max_delay_s=9.0, rng=lambda: 0.0) == 0.0


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        await retry_call(Flaky(0), attempts=0, base_delay_s=0.1, max_delay_s=1.0)
