"""One run of the simulated source: the bounded chunk queue between the sensor tasks and the
batcher, and the supervision that ends the run (all sensors done, one failed, or stop).

A reload starts a new run; the carried `SensorState` continues the seqs, and the schedule
restarts at the new run's start.

Why the stop is shaped as it is: with 100,000 sensors, ending every task in one turn of the loop
held it ~1 s, `asyncio.wait` over them ~1 s more (it adds and removes a callback per task), and
asyncio.Queue's cancelled putters were removed from a deque in O(n) each, a failed removal
formatting the future's repr: measured, a SIGTERM took 4.6 s to stop the source, up to tens of
seconds with many woken putters. Now the queue closes first (no sensor queues another chunk),
the tasks are cancelled a slice per turn, one sensor phase after another (the tasks of a phase
share the beat future, so they end together), completion is a counter kept by one done
callback, and the putters leave the queue in O(1).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from daemon.runtime import Token
from daemon.sources.simulated.generate import Chunk
from daemon.sources.simulated.metronome import Metronome

# Queued after the last chunk, once every sensor task has ended (the run's `error` says why).
END: Chunk = (-1, 0, 0, 0, 0.0)
_CANCEL_SLICE: Final = 5000  # sensor tasks cancelled per turn of the loop on stop (~50 ms of work)


class _Waiters:
    """asyncio.Queue's deque of waiting putters, with O(1) `remove` (a deque's is O(n), and
    the one a cancelled putter that was already woken makes fails after scanning them all)."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: OrderedDict[asyncio.Future[None], None] = OrderedDict()

    def append(self, future: asyncio.Future[None]) -> None:
        self._futures[future] = None

    def popleft(self) -> asyncio.Future[None]:
        return self._futures.popitem(last=False)[0]

    def remove(self, future: asyncio.Future[None]) -> None:
        if self._futures.pop(future, self) is self:
            raise ValueError("not waiting")

    def __len__(self) -> int:
        return len(self._futures)


class ChunkQueue(asyncio.Queue[Chunk]):
    """A FIFO of chunks that is full by readings, not by chunks: one sensor's 4,096-reading
    catch-up chunk and another's single reading must not weigh the same, or how much a stop
    drains, and how far timestamps lag the wall clock under backpressure, would depend on chunk
    sizes. A put is admitted while below the limit, so the queue may exceed it by one chunk."""

    def __init__(self, max_readings: int) -> None:
        super().__init__()
        self.readings = 0
        self._max_readings = max_readings
        self._putters = _Waiters()  # the deque's interface, with an O(1) remove
        self.closed = False  # halted: a sensor's put ends that sensor instead

    def full(self) -> bool:
        return self.readings >= self._max_readings

    def close(self) -> None:
        self.closed = True

    def put_nowait(self, item: Chunk) -> None:
        """Queue `item`; once the run is halted a sensor's chunk ends its task instead, as a
        cancellation would (only END, queued behind the last chunk, still goes in)."""
        if self.closed and item is not END:
            raise asyncio.CancelledError
        super().put_nowait(item)

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
    _running: int = 0  # sensor tasks not yet done
    _ended: asyncio.Event = field(default_factory=asyncio.Event)  # all done, or one failed
    _finished: asyncio.Event = field(default_factory=asyncio.Event)  # all done
    _canceller: asyncio.Task[None] | None = None

    def start(self, sensor: Coroutine[Any, Any, None]) -> None:
        """Run one sensor as a task of this run, counted until it is done."""
        task = asyncio.create_task(sensor)
        self.sensors.append(task)
        self._running += 1
        self._finished.clear()
        task.add_done_callback(self._sensor_done)

    def halt(self) -> None:
        """End every sensor task (once): the queue closes at once, so no sensor queues another
        chunk (what is queued stays queued); the tasks are cancelled a slice per loop turn."""
        if not self._halted:
            self._halted = True
            self.queue.close()
            self._canceller = asyncio.get_running_loop().create_task(self._cancel_in_slices())

    async def finished(self) -> None:
        """Wait until every sensor task is done."""
        if self._running:
            await self._finished.wait()

    async def supervise(self, stop: Token) -> None:
        """End the run when every sensor has finished, one has failed, or `stop` is set; then
        queue END behind the chunks already queued."""
        stopping: asyncio.Future[Any] = asyncio.create_task(stop.wait())
        ended: asyncio.Future[Any] = asyncio.create_task(self._ended.wait())
        try:
            if self._running:
                await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            ended.cancel()
            self.halt()
        await self.finished()
        await self.queue.put(END)

    def _sensor_done(self, task: asyncio.Task[None]) -> None:
        self._running -= 1
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.error = self.error or exc
            self._ended.set()
        if self._running == 0:
            self._ended.set()
            self._finished.set()
            # Freed now by their reference counts: a cancelled task's traceback refers back to
            # this run, a cycle that the frozen collector (memory.py) would keep until exit,
            # where collecting 100,000 of them took 0.8 s.
            self.sensors.clear()

    async def _cancel_in_slices(self) -> None:
        phases = self.metronome.phases
        done = 0
        for phase in range(phases):
            for task in self.sensors[phase::phases]:
                task.cancel()
                done += 1
            if done >= _CANCEL_SLICE:
                done = 0
                await asyncio.sleep(0)  # the cancelled tasks end in this turn, not all in one
