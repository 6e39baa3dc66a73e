"""The data path of one pipeline: sources → bounded queue → stage chain → fan-out to the sinks.

Every arrow is bounded: sources block on the queue when the stages are slow, the stages are
async generators pulled by the sink loop, and the sink loop awaits every delivery. Memory is
bounded by `queue_batches` plus what each stage holds, never by the stream's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from daemon.batch import Batch
from daemon.components import Source, Stage
from daemon.counters import Counters
from daemon.observability.health import StageStats
from daemon.observability.tap import TapBoard, TapPoint
from daemon.resilience import GuardedSink
from daemon.topology.fanout import FanOut
from daemon.topology.memory import freeze_long_lived
from daemon.topology.receipts import Receipts
from daemon.wire.ahead import EncodeAhead

BatchQueue = asyncio.Queue[Batch | None]


async def pump(
    sources: list[Source[Any]], queue: BatchQueue, counters: Counters, receipts: Receipts
) -> None:
    """Run every source into `queue`, numbering each batch for its receipt; put the
    end-of-stream marker when all have ended."""

    async def drain(source: Source[Any]) -> None:
        first = True
        async for batch in source.stream():
            if first:  # the source's tasks and state exist now: long-lived (memory.py)
                freeze_long_lived()
                first = False
            receipts.issue(source, batch)
            await queue.put(batch)
            # Counted once queued, not before: a put cancelled by a forced stop never read it.
            # Nothing can take it off the queue before this line runs (no await in between).
            counters.read += len(batch)

    try:
        await asyncio.gather(*(drain(s) for s in sources))
    finally:
        await queue.put(None)  # end of stream: the stages drain and finish


def chain(
    queue: BatchQueue,
    stages: list[Stage[Any]],
    stats: dict[str, StageStats],
    taps: TapBoard,
) -> AsyncIterator[Batch]:
    """The stages as one async iterator over the queue, each measured, each output tappable
    at its label's point on `taps`."""
    stream: AsyncIterator[Batch] = _from_queue(queue)
    for stage in stages:
        label = stage.ctx.label
        stream = _measured(stage, stream, stats[label], taps.point(label))
    return stream


async def sink_loop(stream: AsyncIterator[Batch], fanout: FanOut, receipts: Receipts) -> None:
    """Deliver each batch while the stages prepare the next one. One delivery is in flight
    at a time, so order, backpressure and every count are as if each were awaited in turn;
    but a delivery that waits on another thread or process (the file write, the encoder
    process) overlaps with the source's and the stages' work on the next batch."""
    delivering: asyncio.Task[None] | None = None
    try:
        async for batch in stream:
            if delivering is not None:
                await delivering
            delivering = asyncio.create_task(_deliver(fanout, batch, receipts))
            # Let it run up to its first real wait (the write, the encoder process) now:
            # pulling the next batch through the stages need not yield to the loop at all.
            await asyncio.sleep(0)
    finally:
        if delivering is not None:
            try:
                await asyncio.shield(delivering)  # a batch handed over is seen through
            except asyncio.CancelledError:
                delivering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivering
                raise


async def _deliver(fanout: FanOut, batch: Batch, receipts: Receipts) -> None:
    if await fanout.deliver(batch):
        receipts.delivered(batch)
    else:  # abandoned at a forced exit: neither it nor anything after it is taken
        receipts.close()


def encoder_ahead(sinks: list[GuardedSink]) -> EncodeAhead | None:
    """A child process encoding batches for the sinks that declare they take wire bytes."""
    if not any(guarded.sink.uses_wire_bytes() for guarded in sinks):
        return None
    ahead = EncodeAhead()
    ahead.start()
    return ahead


async def until_done_or_set(task: asyncio.Future[Any], event: asyncio.Event, *more: Any) -> None:
    """Wait until `task` (or one of `more`) is done or `event` is set, leaving no waiter behind."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, waiter, *more}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


async def _from_queue(queue: BatchQueue) -> AsyncIterator[Batch]:
    while (batch := await queue.get()) is not None:
        yield batch


async def _measured(
    stage: Stage[Any], upstream: AsyncIterator[Batch], stats: StageStats, point: TapPoint
) -> AsyncIterator[Batch]:
    """Run `stage` over `upstream`, recording readings in/out and the time each batch spent
    inside the stage (from being handed in to the stage yielding its result), and showing
    each output to the taps at `point` if there are any (one attribute test per batch)."""
    handed_in = [0.0]
    count_in = [0]

    async def counted() -> AsyncIterator[Batch]:
        async for batch in upstream:
            count_in[0] += len(batch)
            handed_in[0] = time.perf_counter()
            yield batch

    async for out in stage.process(counted()):
        stats.record(count_in[0], len(out), time.perf_counter() - handed_in[0])
        count_in[0] = 0
        if point.taps:
            point.offer(out)
        yield out
