"""Driving a `nats` source in a test as the pipeline drives it, and asking the server what it
acknowledged: what both the source tests and the restart tests need."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.sources.nats import NatsConfig, NatsSource
from tests.support import TestContext

URL = "nats://127.0.0.1:4222"


class Driven:
    """A source's stream run as the pipeline runs it: `checkpoint` as each batch enters,
    `taken` at once (or when the test says, with `auto_take=False`)."""

    def __init__(self, src: NatsSource, *, auto_take: bool = True) -> None:
        self.src = src
        self.auto_take = auto_take
        self.batches: list[Batch] = []
        self.marks: list[object] = []
        self.arrived: list[float] = []  # monotonic time each batch came
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.src.stream():
            mark = self.src.checkpoint(batch)
            self.batches.append(batch)
            self.arrived.append(time.monotonic())
            if self.auto_take and mark is not None:
                self.src.taken(mark)
            elif mark is not None:
                self.marks.append(mark)

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

    async def until(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        await wait_until(predicate, within_s, lambda: f"{len(self.readings)} readings so far")

    async def stop(self, ctx: TestContext) -> None:
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


async def ack_pending(nc: Client, stream: str, durable: str) -> int:
    info = await nc.jetstream().consumer_info(stream, durable)
    return int(info.num_ack_pending or 0)


async def settled(nc: Client, stream: str, durable: str, within_s: float = 10.0) -> None:
    """Every message of the stream delivered and acked, as the server sees it."""
    deadline = time.monotonic() + within_s
    while True:
        info = await nc.jetstream().consumer_info(stream, durable)
        if not info.num_ack_pending and not info.num_pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {info.num_ack_pending=} {info.num_pending=}")
        await asyncio.sleep(0.02)


def config(stream: str, url: str = URL, **keys: Any) -> NatsConfig:
    base: dict[str, Any] = {"subjects": (f"{stream.lower()}.>",), "durable": "d"}
    return NatsConfig(stream=stream, url=url, **(base | keys))


def context(tmp_path: Path, label: str = "sources[0]") -> TestContext:
    return TestContext(label, str(tmp_path / "dead-letter.jsonl"))


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def started(cfg: NatsConfig, ctx: TestContext, *, auto_take: bool = True) -> Driven:
    src = NatsSource(cfg, ctx)
    await src.open()
    return Driven(src, auto_take=auto_take)
