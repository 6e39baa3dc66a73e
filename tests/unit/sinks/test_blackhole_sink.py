"""The blackhole sink: counts and discards; throttled, it paces acknowledgements for real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.config import ConfigError, parse_config
from daemon.sinks.blackhole import BlackholeSink, TokenBucket
from tests.support import TestContext


def readings(n: int, first_seq: int = 0) -> Batch:
    seq = np.arange(first_seq, first_seq + n)
    return Batch.of_sensor("BH01", seq, 1.79e9 + seq * 0.01, np.full(n, 42.0), unit="celsius")


def sink(tmp_path: Path, max_per_s: float, burst_s: float = 0.1) -> BlackholeSink:
    ctx = TestContext("sinks[0]", str(tmp_path / "dead-letter.jsonl"))
    return BlackholeSink(BlackholeSink.Config(max_per_s=max_per_s, burst_s=burst_s), ctx)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_starts_full_then_charges_the_deficit_and_carries_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1000.0, capacity=100.0, clock=clock)
    assert bucket.take(60) == 0.0  # within the initial burst
    assert bucket.take(90) == pytest.approx(0.05)  # 50 readings short at 1000/s
    clock.now += 0.05  # the caller slept the deficit: the debt is paid, the bucket empty
    assert bucket.take(10) == pytest.approx(0.01)
    clock.now += 10.0  # a long idle refills only up to the capacity
    assert bucket.take(100) == 0.0
    assert bucket.take(1) == pytest.approx(0.001)


async def test_unthrottled_counts_readings_batches_and_derived_without_waiting(
    tmp_path: Path,
) -> None:
    bh = sink(tmp_path, max_per_s=0)
    batch = readings(500)
    batch.derived.append({"kind": "features", "sensor_id": "BH01"})
    for i in range(4):
        await bh.write(batch if i == 0 else readings(500, 500 * i))
    await bh.flush()
    gauge = bh.ctx.gauge()
    assert gauge == {"readings": 2000, "batches": 4, "derived": 1, "throttled_s": 0.0}


async def test_throttled_acknowledgements_follow_max_per_s_over_a_real_interval(
    tmp_path: Path,
) -> None:
    rate, burst_s, batch, batches = 8000.0, 0.05, 400, 10
    bh = sink(tmp_path, max_per_s=rate, burst_s=burst_s)
    acked: list[float] = []
    started = time.monotonic()
    for i in range(batches):
        await bh.write(readings(batch, i * batch))
        acked.append(time.monotonic() - started)
    total = batch * batches
    # The bucket starts with burst_s of tokens; the rest must be paid at `rate`: 0.45 s.
    paced_s = (total - rate * burst_s) / rate
    elapsed = acked[-1]
    assert elapsed >= paced_s - 0.01  # never faster than the rate (timer granularity aside)
    assert elapsed <= paced_s + 0.4  # and not waiting far longer than needed
    # At no point did acknowledgements run ahead of burst + rate * t.
    for k, t in enumerate(acked, start=1):
        assert k * batch <= rate * burst_s + rate * t + 1, (k, t)
    assert bh.ctx.gauge()["throttled_s"] == pytest.approx(paced_s, abs=0.05)


async def test_a_throttled_write_waits_without_blocking_the_loop(tmp_path: Path) -> None:
    bh = sink(tmp_path, max_per_s=1000.0, burst_s=0.01)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await bh.write(readings(210))  # 200 readings short: 0.2 s of pacing
    finally:
        task.cancel()
    assert ticks >= 5  # the loop kept running other tasks meanwhile


def test_config_is_bounded_and_documented() -> None:
    base = '[[sources]]\ntype = "simulated"\n[[sinks]]\ntype = "blackhole"\n'
    cfg = parse_config(base + "max_per_s = 10000\n")
    assert cfg.sinks[0].config == BlackholeSink.Config(max_per_s=10000.0)
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.max_per_s: must be >= 0, got -1"):
        parse_config(base + "max_per_s = -1\n")
