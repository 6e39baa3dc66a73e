"""GuardedSink under faults: a full spool (its cap, ENOSPC) makes deliveries wait, never drop;
the forced exit's last resorts; every write's deadline; start-up with a full disk."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.resilience import Delivery, Spool
from daemon.resilience.cursor import CursorFile, Position
from tests.guarded_support import RESET_S, THRESHOLD, Harness, MemorySink, N, events


def full_disk(
    monkeypatch: pytest.MonkeyPatch, failures: int | None = None, err: int = errno.ENOSPC
) -> list[int]:
    """Spool appends fail with `err` (`failures` times, or always); returns the call count."""
    calls = [0]
    real = Spool.append_payload

    def append(self: Spool, payload: bytes, *, over_cap: bool = False) -> None:
        calls[0] += 1
        if failures is None or calls[0] <= failures:
            raise OSError(err, os.strerror(err))
        real(self, payload, over_cap=over_cap)

    monkeypatch.setattr(Spool, "append_payload", append)
    return calls


async def spool_one_and_open_the_breaker(h: Harness) -> None:
    await h.guarded.open()
    h.sink.down = True
    assert await h.feed(1) == ["spooled"]  # the spool was empty: it takes one whatever the cap


async def test_a_full_spool_waits_logs_once_and_the_recovered_sink_takes_it(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, spool_max_bytes=1)
    await spool_one_and_open_the_breaker(h)
    waits: list[float] = []

    def heal(delay: float) -> None:
        if h.ctx.gauge()["spool_full"]:  # a wait for room, not a retry's backoff
            waits.append(delay)
        if len(waits) == 3:
            h.sink.down = False
            h.clock.now += RESET_S

    h.on_sleep = heal
    with capture_logs() as logs:
        assert await h.feed(1) == ["written"]
    assert len(waits) == 3 and all(0 <= d <= 2.0 for d in waits)
    (full,) = events(logs, "spool_full")
    assert full["spool_max_bytes"] == 1 and "spool_max_bytes" in full["error"]
    (recovered,) = events(logs, "spool_recovered")
    assert recovered["taken_by"] == "sink"
    assert h.sink.seqs() == list(range(2 * N))  # the spooled one first: order holds
    c = h.ctx.counters
    assert (c.spooled, c.unspooled, c.written) == (N, N, N)
    assert c.reconciles()
    assert h.ctx.gauge()["spool_full"] == 0


async def test_a_full_spool_waits_until_it_has_room_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, spool_max_bytes=1)
    await spool_one_and_open_the_breaker(h)

    def make_room(delay: float) -> None:
        h.guarded.spool.cap = 1 << 30

    h.on_sleep = lambda delay: make_room(delay) if h.ctx.gauge()["spool_full"] else None
    with capture_logs() as logs:
        assert await h.feed(1) == ["spooled"]
    assert events(logs, "spool_recovered")[0]["taken_by"] == "spool"
    assert h.guarded.spool.pending_readings == 2 * N
    assert h.ctx.counters.reconciles()


@pytest.mark.parametrize(
    ("err", "event"), [(errno.ENOSPC, "spool_full"), (errno.EIO, "spool_write_failed")]
)
async def test_a_failing_spool_disk_is_backpressure_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, event: str
) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    full_disk(monkeypatch, failures=4, err=err)
    with capture_logs() as logs:
        assert await h.feed(1) == ["spooled"]
    assert len(events(logs, event)) == 1
    assert len(h.sleeps) >= 4
    assert h.ctx.counters.reconciles()


async def test_forced_while_the_disk_is_full_and_the_sink_down_abandons_visibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    full_disk(monkeypatch)
    h.on_sleep = lambda delay: h.ctx.lifetime.force.set() if len(h.sleeps) == 2 else None
    with capture_logs() as logs:
        delivery = await h.guarded.deliver(h.batch())
    assert delivery.outcome == "abandoned"
    assert "No space" in (delivery.reason or "")
    (abandoned,) = events(logs, "spool_abandoned")
    assert abandoned["readings"] == N


async def test_forced_with_only_the_cap_reached_spools_over_the_cap(tmp_path: Path) -> None:
    h = Harness(tmp_path, spool_max_bytes=1)
    await spool_one_and_open_the_breaker(h)
    h.on_sleep = lambda delay: h.ctx.lifetime.force.set()
    assert await h.feed(1) == ["spooled"]
    assert h.guarded.spool.pending_readings == 2 * N


async def test_forced_with_a_full_disk_writes_to_a_healthy_sink_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    full_disk(monkeypatch)
    h.ctx.lifetime.force.set()
    assert await h.guarded.deliver(h.batch()) == Delivery("written")
    assert h.sink.seqs() == list(range(N))


async def test_a_write_past_its_deadline_is_cancelled_opens_the_breaker_and_spools(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, write_timeout_s=0.05)
    await h.guarded.open()
    h.sink.gate = asyncio.Event()  # never opened: the write hangs
    began = time.monotonic()
    with capture_logs() as logs:
        assert await h.feed(1) == ["spooled"]
    assert time.monotonic() - began < 1.0
    assert h.sink.attempts == 1  # a timeout is not retried at once: it would wait as long again
    assert h.guarded.state == "open"
    (timeout,) = events(logs, "sink_write_timeout")
    assert "0.05 s" in timeout["error"]
    assert h.ctx.counters.reconciles()


class ThreadBlockedSink(MemorySink):
    """Writes through a thread that blocks until released, like aiofiles on a FIFO."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.release = threading.Event()

    async def write(self, batch: Batch) -> None:
        self.attempts += 1
        await asyncio.to_thread(self.release.wait)


async def test_a_write_blocked_in_a_thread_still_returns_on_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, write_timeout_s=0.1)
    blocked = ThreadBlockedSink(h.ctx)
    h.sink = blocked
    h.guarded.sink = blocked
    h.guarded._calls.sink = blocked
    try:
        began = time.monotonic()
        assert await h.feed(1) == ["spooled"]
        assert time.monotonic() - began < 1.0
        assert h.guarded.state == "open"
    finally:
        blocked.release.set()


async def test_force_cuts_a_running_write_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)  # the default 30 s deadline
    await h.guarded.open()
    h.sink.gate = asyncio.Event()
    delivery = asyncio.create_task(h.guarded.deliver(h.batch()))
    await h.sink.waiting.wait()
    began = time.monotonic()
    h.ctx.lifetime.force.set()
    assert await delivery == Delivery("spooled")
    assert time.monotonic() - began < 0.5
    assert h.guarded.state == "closed"  # cut short says nothing about the sink


async def test_an_open_that_hangs_does_not_hold_start_up(tmp_path: Path) -> None:
    h = Harness(tmp_path, write_timeout_s=0.05)
    hang = asyncio.Event()

    async def never() -> None:
        await hang.wait()

    h.sink.open = never  # type: ignore[method-assign]
    with capture_logs() as logs:
        await asyncio.wait_for(h.guarded.open(), 2.0)
    assert events(logs, "sink_write_timeout")[0]["during"] == "open"


async def test_start_up_on_a_full_disk_replays_to_a_healthy_sink_and_writes_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = Harness(tmp_path)
    await earlier.guarded.open()
    earlier.sink.down = True
    await earlier.feed(3)
    await earlier.guarded.close()
    (tmp_path / "spool" / "cursor").unlink(missing_ok=True)

    def no_space(self: CursorFile, position: Position) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CursorFile, "store", no_space)
    full_disk(monkeypatch)
    h = Harness(tmp_path)
    h.next_seq = 100
    with capture_logs() as logs:
        await h.guarded.open()  # nothing raises
        assert await h.feed(2) == ["written", "written"]
    assert h.sink.seqs() == [*range(3 * N), *range(100, 100 + 2 * N)]
    assert len(events(logs, "spool_cursor_write_failed")) == 1
    c = h.ctx.counters
    assert (c.replayed, c.written) == (3 * N, 5 * N)
    assert c.reconciles()


async def test_an_unusable_spool_directory_leaves_a_healthy_sink_writing(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("a file where the spool directory should be\n")
    h = Harness(tmp_path)
    await h.guarded.open()
    assert await h.feed(2) == ["written", "written"]
    assert h.ctx.counters.reconciles()


async def test_the_breaker_threshold_is_unchanged_for_ordinary_failures(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    assert await h.feed(THRESHOLD - 1) == ["spooled"] * (THRESHOLD - 1)
    assert h.guarded.state == "closed"
