"""Retry a coroutine with capped exponential backoff and full jitter.

Why this shape: a transient sink error (a dropped connection, a busy database) usually clears
within a few hundred milliseconds, so a few spaced retries absorb it without anyone noticing.
Full jitter (a uniform delay in [0, backoff]) keeps many sinks recovering at once from retrying in
lockstep. Retries are bounded by attempts (and optionally by total time): a sustained outage is the
circuit breaker's job, not ours, and an endless retry would stall the stream.

Errors are split three ways: `give_up_on` (a `PermanentSinkError`: no retry can fix it) is
re-raised at once, `retry_on` is retried, anything else propagates untouched.

Tests switch backoff off with `fast_retries()` (like stamina's `set_testing`): same attempts, no
waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from daemon.components import PermanentSinkError, SinkError

T = TypeVar("T")

ExcTypes = tuple[type[BaseException], ...]


class _Testing:
    """Process-wide test switch; a holder object so the flag is not a rebound global."""

    enabled = False


def set_testing(enabled: bool) -> None:
    """Turn backoff delays off (True) or on again (False). Attempts are unchanged."""
    _Testing.enabled = bool(enabled)


def is_testing() -> bool:
    return _Testing.enabled


@contextmanager
def fast_retries() -> Iterator[None]:
    """Within the block, `retry_call` retries without sleeping; restores the previous mode."""
    previous = _Testing.enabled
    _Testing.enabled = True
    try:
        yield
    finally:
        _Testing.enabled = previous


def backoff_delay(
    retry: int,
    *,
    base_delay_s: float,
    max_delay_s: float,
    jitter: bool = True,
    rng: Callable[[], float] = random.random,
) -> float:
    """The wait before retry number `retry` (0 = the first retry): `base * 2**retry`, capped at
    `max_delay_s`, scaled by `rng()` in [0, 1) when `jitter` is on (full jitter)."""
    delay = min(max_delay_s, base_delay_s * 2.0 ** min(retry, 64))
    return delay * rng() if jitter else delay


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base_delay_s: float,
    max_delay_s: float,
    jitter: bool = True,
    retry_on: ExcTypes = (SinkError,),
    give_up_on: ExcTypes = (PermanentSinkError,),
    timeout_s: float | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Await `fn()` up to `attempts` times (the first included) and return its result.

    Between attempts wait `backoff_delay(...)`. When `timeout_s` is set, no retry starts whose
    backoff would end past `timeout_s` after the first attempt began (a running attempt is never
    cancelled). The last error is re-raised when attempts or time run out.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    deadline = None if timeout_s is None else clock() + timeout_s
    retry = 0
    while True:
        try:
            return await fn()
        except give_up_on:
            raise
        except retry_on:
            if retry + 1 >= attempts:
                raise
            delay = 0.0
            if not _Testing.enabled:
                delay = backoff_delay(
                    retry,
                    base_delay_s=base_delay_s,
                    max_delay_s=max_delay_s,
                    jitter=jitter,
                    rng=rng,
                )
            if deadline is not None and clock() + delay > deadline:
                raise
            retry += 1
            if delay > 0:
                await sleep(delay)
