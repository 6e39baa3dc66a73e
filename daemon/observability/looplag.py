"""Event-loop lag, the watchdog that only feeds a healthy loop, and the process RSS.

Lag is measured the simple, honest way: a task asks to wake up every `interval_s` and records
how late it actually woke. A loop blocked by CPU work in a coroutine (the thing principle 5
forbids) shows up as lateness. The watchdog pings systemd only while the loop is not stalled, so
a wedged daemon is restarted by systemd instead of being reported healthy by a timer that
happens to still fire.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from daemon.observability import events
from daemon.observability.sdnotify import Notifier

log = structlog.get_logger(__name__)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_STATM = Path("/proc/self/statm")


@dataclass(frozen=True)
class LagStats:
    p50_s: float
    p99_s: float
    max_s: float
    samples: int

    def as_ms(self) -> dict[str, float]:
        return {
            "p50": round(self.p50_s * 1e3, 3),
            "p99": round(self.p99_s * 1e3, 3),
            "max": round(self.max_s * 1e3, 3),
        }


class LoopLagMonitor:
    """Keeps the last `samples` lateness measurements; run `run()` as a task."""

    def __init__(
        self,
        interval_s: float = 0.1,
        samples: int = 600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._samples: deque[float] = deque(maxlen=samples)
        self._last_tick: float | None = None

    async def run(self) -> None:
        """Measure until cancelled."""
        clock, interval = self._clock, self.interval_s
        self._last_tick = clock()
        while True:
            asked_at = clock()
            await asyncio.sleep(interval)
            now = clock()
            self._samples.append(max(0.0, now - asked_at - interval))
            self._last_tick = now

    def record(self, lag_s: float) -> None:
        """Add one measurement (what `run()` does on each wake-up; tests feed it directly)."""
        self._samples.append(lag_s)
        self._last_tick = self._clock()

    @property
    def last_lag_s(self) -> float:
        return self._samples[-1] if self._samples else 0.0

    def stats(self) -> LagStats:
        if not self._samples:
            return LagStats(0.0, 0.0, 0.0, 0)
        arr = np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))
        p50, p99 = np.percentile(arr, (50, 99))
        return LagStats(float(p50), float(p99), float(arr.max()), int(arr.size))

    def stalled(self, threshold_s: float) -> bool:
        """True when the latest wake-up was `threshold_s` late, or when the monitor has not
        woken for that long past its interval (the loop is blocked right now, or was until a
        moment ago and the monitor has not run yet). False before the monitor has started."""
        if self._last_tick is None:
            return False
        overdue = self._clock() - self._last_tick - self.interval_s
        return overdue >= threshold_s or self.last_lag_s >= threshold_s


async def watchdog_loop(
    notifier: Notifier, monitor: LoopLagMonitor, interval: float, stall_threshold_s: float
) -> None:
    """Send WATCHDOG=1 every `interval` seconds while the loop is healthy; until cancelled."""
    stalled = False
    while True:
        if monitor.stalled(stall_threshold_s):
            if not stalled:
                log.warning(
                    events.LOOP_STALLED,
                    lag_s=round(monitor.last_lag_s, 3),
                    threshold_s=stall_threshold_s,
                )
            stalled = True
        else:
            if stalled:
                log.info(events.LOOP_RECOVERED, lag_s=round(monitor.last_lag_s, 3))
            stalled = False
            notifier.watchdog()
        await asyncio.sleep(interval)


def rss_bytes() -> int:
    """Resident set size now (from /proc/self/statm; the peak from getrusage elsewhere)."""
    try:
        return int(_STATM.read_bytes().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
