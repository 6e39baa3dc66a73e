"""Loop lag under a real blocking call, the watchdog that only feeds a healthy loop, RSS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import numpy as np

from daemon.observability.looplag import LoopLagMonitor, rss_bytes, watchdog_loop
from daemon.observability.sdnotify import Notifier

DEADLINE_S = 5.0


async def until(condition: object, what: str) -> None:
    """Let the loop run until `condition()` holds (bounded), instead of guessing a sleep."""
    assert callable(condition)
    async with asyncio.timeout(DEADLINE_S):
        while not condition():  # noqa: ASYNC110 - a plain attribute to poll, no event exists
            await asyncio.sleep(0.005)


async def test_a_blocking_call_shows_up_as_lag_and_as_stalled() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    assert not monitor.stalled(0.1)  # not started: no verdict
    task = asyncio.create_task(monitor.run())
    try:
        await until(lambda: monitor.stats().samples >= 3, "first samples")
        assert monitor.stats().max_s < 0.15
        assert not monitor.stalled(0.15)

        # A coroutine blocking the loop: exactly what the monitor exists to catch.
        time.sleep(0.3)  # noqa: ASYNC251 - the stall under test
        assert monitor.stalled(0.15)  # seen at once: the monitor is overdue

        before = monitor.stats().samples
        await until(lambda: monitor.stats().samples > before, "the late wake-up")
        assert monitor.stats().max_s >= 0.25
        await until(lambda: not monitor.stalled(0.15), "recovery")
        stats = monitor.stats()
        assert stats.p50_s < 0.15 <= stats.max_s
        assert stats.as_ms()["max"] >= 250
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_samples_are_bounded() -> None:
    monitor = LoopLagMonitor(samples=5)
    for lag in (1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0):
        monitor.record(lag)
    stats = monitor.stats()
    assert stats.samples == 5
    assert stats.max_s == 0.0


class CountingMonitor(LoopLagMonitor):
    """A real monitor that also counts how often the watchdog asked it."""

    asked = 0

    def stalled(self, threshold_s: float) -> bool:
        self.asked += 1
        return super().stalled(threshold_s)


async def test_watchdog_pings_only_while_the_loop_is_healthy(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.setblocking(False)
        monitor = CountingMonitor(interval_s=10.0)  # never runs: the test feeds samples
        monitor.record(3.0)  # stalled
        notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
        task = asyncio.create_task(watchdog_loop(notifier, monitor, 0.01, stall_threshold_s=1.0))
        try:
            await until(lambda: monitor.asked >= 5, "five watchdog rounds")
            try:
                stray = sock.recv(64)
            except BlockingIOError:
                stray = b""
            assert stray == b"", "pinged a stalled loop"

            monitor.record(0.001)  # healthy again
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(DEADLINE_S):
                assert await loop.sock_recv(sock, 64) == b"WATCHDOG=1"
                assert await loop.sock_recv(sock, 64) == b"WATCHDOG=1"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_rss_grows_with_touched_memory() -> None:
    before = rss_bytes()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page written
    after = rss_bytes()
    assert before > 0
    assert after - before > 48 * 2**20
    del block
