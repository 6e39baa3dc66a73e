"""A source's stream run in a test as the pipeline runs it: `checkpoint` as each batch enters,
`taken` at once (or when the test says, with `auto_take=False`). What the broker source tests
(mqtt, nats) need to see which readings came and to hold or release their acknowledgements."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from daemon.batch import Batch
from daemon.components import Source
from daemon.sensors import SENSORS
from tests.support import TestContext


class Driven:
    def __init__(self, src: Source[Any], *, auto_take: bool = True, marked: bool = False) -> None:
        """`marked`: every yielded batch must have a checkpoint (acks to release)."""
        self.src = src
        self.auto_take = auto_take
        self.marked = marked
        self.batches: list[Batch] = []
        self.count = 0  # readings in `batches`
        self.marks: list[object] = []
        self.arrived: list[float] = []  # monotonic time each batch came
        self._grew = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.src.stream():
            mark = self.src.checkpoint(batch)
            assert mark is not None or not self.marked, "a yielded batch has no acks to release"
            self.batches.append(batch)
            self.arrived.append(time.monotonic())
            self.count += len(batch)
            if self.auto_take and mark is not None:
                self.src.taken(mark)
            elif mark is not None:
                self.marks.append(mark)
            self._grew.set()

    def take_all(self) -> None:
        marks, self.marks = self.marks, []
        for mark in marks:
            self.src.taken(mark)

    @property
    def readings(self) -> list[tuple[str, int]]:
        return [
            (SENSORS.sensor_id(int(s)), int(q))
            for b in self.batches
            for s, q in zip(b.sensor, b.seq, strict=True)
        ]

    async def until(self, count: int, timeout_s: float = 10.0) -> list[tuple[str, int]]:
        """Wait until `count` readings arrived (failing after `timeout_s`)."""
        async with asyncio.timeout(timeout_s):
            while self.count < count:
                self._grew.clear()
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"the stream ended at {self.count} readings")
                await self._grew.wait()
        return self.readings

    async def until_true(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        await wait_until(predicate, within_s, lambda: f"{len(self.readings)} readings so far")

    async def stop(self, ctx: TestContext) -> None:
        """Stop the source as a shutdown does, let its stream end, close it."""
        ctx.lifetime.stop.set()
        async with asyncio.timeout(5):
            await self.task
        await self.src.close()


async def wait_until(
    predicate: Callable[[], bool], within_s: float, state: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s; {state()}")
        await asyncio.sleep(0.01)
