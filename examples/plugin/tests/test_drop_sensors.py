"""The stage on its own, without a daemon: `pytest examples/plugin/tests` once it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ingestd_example import DropSensors, DropSensorsConfig

from daemon import Batch
from daemon.runtime import ComponentContext, Lifetime, RunState


async def _feed(batches: list[Batch]) -> AsyncIterator[Batch]:
    for batch in batches:
        yield batch


def _run(config: DropSensorsConfig, batches: list[Batch]) -> tuple[list[Batch], int]:
    state = RunState.fresh("/dev/null")
    stage = DropSensors(config, ComponentContext("stages[0]", "stage", state, Lifetime()))

    async def collect() -> list[Batch]:
        return [b async for b in stage.process(_feed(batches))]

    out = asyncio.run(collect())
    return out, state.counters.filtered


def test_prefixes_and_cap_drop_and_count() -> None:
    keep = Batch.of_sensor("ex-keep-1", [0, 1, 2], [0.0, 1.0, 2.0], [1.0, 50.0, 2.0])
    gone = Batch.of_sensor("ex-test-1", [0, 1], [0.0, 1.0], [1.0, 2.0])
    later = Batch.of_sensor("ex-test-2", [0], [0.0], [1.0])  # a sensor first seen mid-stream
    out, filtered = _run(
        DropSensorsConfig(prefixes=["ex-test-"], max_value=10.0), [keep, gone, later]
    )
    assert [b.value.tolist() for b in out] == [[1.0, 2.0]]
    assert filtered == 1 + 2 + 1


def test_no_cap_keeps_every_value() -> None:
    batch = Batch.of_sensor("ex-keep-2", [0, 1], [0.0, 1.0], [1e9, float("nan")])
    out, filtered = _run(DropSensorsConfig(prefixes=[]), [batch])
    assert out == [batch] and filtered == 0
