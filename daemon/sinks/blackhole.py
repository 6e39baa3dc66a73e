"""`blackhole`: counts readings and discards them, optionally paced to `max_per_s`.

Why a sink that keeps nothing (Vector has one by the same name): to measure the pipeline without
a disk in the way, and, throttled, to be the slow sink of a backpressure drill. Throttling is real
pacing, on purpose: a token bucket refilled at `max_per_s` with room for `burst_s` of readings;
a batch takes its readings' tokens (going into debt when it is bigger than what is there) and
`write()` returns only once the debt is paid, by awaiting `asyncio.sleep`. So acknowledgements
never run ahead of `burst_s * max_per_s + max_per_s * elapsed`, and the wait is spent off the
event loop's CPU: a throttled sink slows the stages and, through the bounded queues, the sources.

Gauges: `readings`, `batches` and `derived` discarded, `throttled_s` spent waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from daemon.batch import Batch
from daemon.components import Sink
from daemon.config.fields import Range
from daemon.runtime import ComponentContext


class TokenBucket:
    """Tokens refill at `rate` per second up to `capacity`; `take(n)` says how long to wait
    before `n` tokens are paid for (debt carries into the next call). Starts full."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def take(self, n: int) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        return -self._tokens / self.rate if self._tokens < 0 else 0.0


@dataclass(frozen=True)
class BlackholeConfig:
    """The `blackhole` sink's keys."""

    max_per_s: Annotated[
        float, Range(ge=0), "readings acknowledged per second at most (0: unthrottled)"
    ] = 0.0
    burst_s: Annotated[
        float, Range(gt=0, le=60), "seconds' worth of readings acknowledged at once"
    ] = 0.1


class BlackholeSink(Sink[BlackholeConfig], name="blackhole"):
    """Discards readings after counting them; `max_per_s` > 0 paces acknowledgements."""

    def __init__(self, config: BlackholeConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        rate = config.max_per_s
        self._bucket = TokenBucket(rate, rate * config.burst_s, ctx.clock) if rate > 0 else None
        self._gauge = ctx.gauge()
        self._gauge.update(readings=0, batches=0, derived=0, throttled_s=0.0)

    async def write(self, batch: Batch) -> None:
        if self._bucket is not None and len(batch):
            wait_s = self._bucket.take(len(batch))
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                self._gauge["throttled_s"] += wait_s
        gauge = self._gauge
        gauge["readings"] += len(batch)
        gauge["batches"] += 1
        gauge["derived"] += len(batch.derived)

    async def flush(self) -> None:
        """Nothing to make durable."""
