"""One pipeline run: sources → bounded queue → stage chain → fan-out to guarded sinks.

Every arrow is bounded: sources block on the queue when the stages are slow, the stages are
async generators pulled by the sink loop, and the sink loop awaits every delivery. Memory is
bounded by `queue_batches` plus what each stage holds, never by the stream's length.

The run ends when every source is exhausted or `state.stop` was set and everything already read
has gone through the stages into the sinks (the drain). With `state.force` set, the guarded
sinks spool instead of writing, so the drain finishes at disk speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from daemon.batch import Batch
from daemon.components import Source, Stage
from daemon.config import AppConfig
from daemon.observability.health import StageStats
from daemon.resilience import GuardedSink
from daemon.runtime import RunState
from daemon.topology.build import Components, build_components
from daemon.topology.fanout import FanOut
from daemon.topology.memory import freeze_long_lived, keep_freed_memory, thaw_long_lived
from daemon.wire.ahead import EncodeAhead

IDLE_REPLAY_S = 1.0


class Pipeline:
    def __init__(self, config: AppConfig, state: RunState) -> None:
        self.config = config
        self.state = state
        self.components: Components = build_components(config, state)
        self.fanout = FanOut(self.components.sinks, state)
        self.stage_stats: dict[str, StageStats] = {
            stage.ctx.label: StageStats() for stage in self.components.stages
        }
        self.queue: asyncio.Queue[Batch | None] | None = None
        self.started = asyncio.Event()

    @property
    def queue_depth(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    async def run(self) -> None:
        keep_freed_memory()  # before the first batch's temporaries (see memory.py)
        comps = self.components
        opened: list[Source | Stage] = []
        try:
            for sink in comps.sinks:
                await sink.open()
            for stage in comps.stages:
                await stage.open()
                opened.append(stage)
            for source in comps.sources:
                await source.open()
                opened.append(source)
            self.queue = asyncio.Queue(maxsize=self.config.daemon.queue_batches)
            ahead = _encoder_ahead(comps.sinks)
            try:
                await self._deliver_all(comps, self.queue, ahead)
            finally:
                if ahead is not None:
                    await ahead.close()
        finally:
            for component in reversed(opened):
                await component.close()
            for sink in comps.sinks:
                await sink.close()
            thaw_long_lived()

    async def _deliver_all(
        self, comps: Components, queue: asyncio.Queue[Batch | None], ahead: EncodeAhead | None
    ) -> None:
        """Run the sources into the chain and the chain into the sinks until the end of the
        stream; a source's error is raised once everything before it was delivered."""
        pump = asyncio.create_task(self._pump(comps.sources, queue), name="sources")
        replayer = asyncio.create_task(self._replay_when_idle(), name="idle-replay")
        stream = self._chain(queue, comps.stages)
        self.started.set()
        try:
            await self._sink_loop(ahead.stream(stream) if ahead else stream)
            await pump  # re-raises a source's error, if any
        finally:
            for task in (pump, replayer):
                task.cancel()
            # both end here, whatever the pump raised (already raised above, if it was first)
            await asyncio.gather(pump, replayer, return_exceptions=True)

    async def _pump(self, sources: list[Source], queue: asyncio.Queue[Batch | None]) -> None:
        counters = self.state.counters

        async def drain(source: Source) -> None:
            first = True
            async for batch in source.stream():
                if first:  # the source's tasks and state exist now: long-lived (memory.py)
                    freeze_long_lived()
                    first = False
                counters.read += len(batch)
                await queue.put(batch)

        try:
            await asyncio.gather(*(drain(s) for s in sources))
        finally:
            await queue.put(None)  # end of stream: the stages drain and finish

    def _chain(
        self, queue: asyncio.Queue[Batch | None], stages: list[Stage]
    ) -> AsyncIterator[Batch]:
        stream: AsyncIterator[Batch] = _from_queue(queue)
        for stage in stages:
            stats = self.stage_stats[stage.ctx.label]
            stream = _measured(stage, stream, stats)
        return stream

    async def _sink_loop(self, stream: AsyncIterator[Batch]) -> None:
        """Deliver each batch while the stages prepare the next one. One delivery is in flight
        at a time, so order, backpressure and every count are as if each were awaited in turn;
        but a delivery that waits on another thread or process (the file write, the encoder
        process) overlaps with the source's and the stages' work on the next batch."""
        delivering: asyncio.Task[None] | None = None
        try:
            async for batch in stream:
                if delivering is not None:
                    await delivering
                delivering = asyncio.create_task(self.fanout.deliver(batch))
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

    async def _replay_when_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_REPLAY_S)
            await self.fanout.replay_idle()


def _encoder_ahead(sinks: list[GuardedSink]) -> EncodeAhead | None:
    """A child process encoding batches for the sinks that want it (see encode_ahead.py)."""
    if not any(getattr(guarded.sink, "encode_ahead", False) for guarded in sinks):
        return None
    ahead = EncodeAhead()
    ahead.start()
    return ahead


async def _from_queue(queue: asyncio.Queue[Batch | None]) -> AsyncIterator[Batch]:
    while (batch := await queue.get()) is not None:
        yield batch


async def _measured(
    stage: Stage, upstream: AsyncIterator[Batch], stats: StageStats
) -> AsyncIterator[Batch]:
    """Run `stage` over `upstream`, recording readings in/out and the time each batch spent
    inside the stage (from being handed in to the stage yielding its result)."""
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
        yield out
