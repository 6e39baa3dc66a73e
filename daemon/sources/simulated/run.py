"""One run of the simulated source: the bounded chunk queue between the sensor tasks and the
batcher, and the supervision that ends the run (all sensors done, one failed, or stop).

A reload starts a new run; the carried `SensorState` continues the seqs, and the schedule
restarts at the new run's start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from daemon.runtime import Token
from daemon.sources.simulated.generate import Chunk
from daemon.sources.simulated.metronome import Metronome

# Queued after the last chunk, once every sensor task has ended (the run's `error` says why).
END: Chunk = (-1, 0, 0, 0, 0.0)


class ChunkQueue(asyncio.Queue[Chunk]):
    """A FIFO of chunks that is full by readings, not by chunks: one sensor's 4,096-reading
    catch-up chunk and another's single reading must not weigh the same, or how much a stop
    drains, and how far timestamps lag the wall clock under backpressure, would depend on chunk
    sizes. A put is admitted while below the limit, so the queue may exceed it by one chunk."""

    def __init__(self, max_readings: int) -> None:
        super().__init__()
        self.readings = 0
        self._max_readings = max_readings

    def full(self) -> bool:
        return self.readings >= self._max_readings

    def _put(self, item: Chunk) -> None:
        super()._put(item)
        self.readings += item[3]

    def _get(self) -> Chunk:
        item = super()._get()
        self.readings -= item[3]
        return item

    async def get_within(self, wait_s: float) -> Chunk | None:
        """The next chunk, waiting at most `wait_s` for one (None: none came)."""
        try:
            return self.get_nowait()
        except asyncio.QueueEmpty:
            if wait_s <= 0:
                return None
        try:
            async with asyncio.timeout(wait_s):
                return await self.get()
        except TimeoutError:
            return None


def split(chunk: Chunk, n: int, rate_hz: float) -> tuple[Chunk, Chunk]:
    """The first `n` readings of `chunk`, and the rest."""
    sensor, seq, attempt, count, ts = chunk
    return (sensor, seq, attempt, n, ts), (
        sensor,
        seq + n,
        attempt + n,
        count - n,
        ts + n / rate_hz,
    )


@dataclass
class SensorRun:
    queue: ChunkQueue
    metronome: Metronome
    origin: float = 0.0  # loop.time() at the start (once every sensor task waits for a beat)
    wall: float = 0.0  # time.time() then: reading k is stamped wall + phase offset + (k+1)/rate
    sensors: list[asyncio.Task[None]] = field(default_factory=list)
    error: BaseException | None = None  # why the sensors stopped, if one failed
    _halted: bool = False

    def halt(self) -> None:
        """Cancel every sensor task (once): a sensor waiting for its tick or for room in the
        queue ends there; what is already queued stays queued."""
        if not self._halted:
            self._halted = True
            for task in self.sensors:
                task.cancel()

    async def supervise(self, stop: Token) -> None:
        """End the run when every sensor has finished, one has failed, or `stop` is set; then
        queue END behind the chunks already queued."""
        gathered: asyncio.Future[Any] = asyncio.gather(*self.sensors)
        gathered.add_done_callback(_retrieve)
        stopping: asyncio.Future[Any] = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([gathered, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            self.halt()
        await asyncio.wait(self.sensors)
        self.error = next(
            (t.exception() for t in self.sensors if not t.cancelled() and t.exception()), None
        )
        await self.queue.put(END)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark the gather's outcome as seen (the sensors' own errors end up in `error`)."""
    if not fut.cancelled():
        fut.exception()
