"""The shared batching of message-at-a-time sources: size and latency bounds, nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.sensors import SENSORS
from daemon.sources.batching import BatchBuilder, batched


async def burst(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def collect(groups: AsyncIterator[list[int]]) -> list[list[int]]:
    return [g async for g in groups]


@given(n=st.integers(0, 200), size=st.integers(1, 50))
async def test_a_busy_stream_fills_batches_in_order(n: int, size: int) -> None:
    groups = await collect(batched(burst(n), max_items=size, max_latency_s=60))
    assert [i for g in groups for i in g] == list(range(n))
    assert all(len(g) == size for g in groups[:-1])
    assert all(1 <= len(g) <= size for g in groups)


async def test_a_quiet_stream_hands_a_partial_batch_on_at_the_latency_bound() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def trickle() -> AsyncIterator[int]:
        yield 1
        yield 2
        await release.wait()  # the third item is long in coming
        yield 3

    stream = batched(trickle(), max_items=100, max_latency_s=0.05)
    began = loop.time()
    first = await anext(stream)
    assert first == [1, 2]
    assert 0.04 <= loop.time() - began < 1.0  # held for the latency bound, not for the third
    release.set()
    assert await anext(stream) == [3]  # the awaited item survived the deadline
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_closing_early_cancels_the_pending_read() -> None:
    cancelled = asyncio.Event()

    async def forever() -> AsyncIterator[int]:
        yield 0
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield 1  # pragma: no cover - never reached

    stream = batched(forever(), max_items=10, max_latency_s=0.01)
    assert await anext(stream) == [0]
    await stream.aclose()
    assert cancelled.is_set()


async def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_items"):
        await anext(batched(burst(1), max_items=0, max_latency_s=1))


def test_the_builder_makes_one_batch_of_what_was_added_and_starts_again() -> None:
    builder = BatchBuilder()
    builder.add("BATCHING-A", 7, 1.5e9, 20.5, unit="celsius")
    builder.add("BATCHING-B", 0, 1.5e9 + 1, 30.0, stale=True)
    assert len(builder) == 2
    batch = builder.take()
    assert len(builder) == 0 and len(batch) == 2
    assert SENSORS.unit(int(batch.sensor[0])) == "celsius"
    assert [SENSORS.sensor_id(int(i)) for i in batch.sensor] == ["BATCHING-A", "BATCHING-B"]
    assert batch.seq.tolist() == [7, 0] and batch.value.tolist() == [20.5, 30.0]
    assert batch.stale.tolist() == [False, True]
    assert len(builder.take()) == 0
