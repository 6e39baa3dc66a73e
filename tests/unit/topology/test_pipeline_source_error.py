"""A source that fails ends the pipeline with its error, after what it read was delivered, and
leaves nothing running behind: no encoder child, no task."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.components import Source
from daemon.config import parse_config
from daemon.runtime import RunState
from daemon.sensors import SENSORS
from daemon.topology.pipeline import Pipeline


class SourceFailure(Exception):
    pass


@dataclass(frozen=True)
class FailingConfig:
    readings: int = 100


class FailingSource(Source[FailingConfig], name="test_failing_source"):
    """Yields one batch of `readings`, then fails."""

    async def stream(self) -> AsyncIterator[Batch]:
        n = self.config.readings
        sensor = np.full(n, SENSORS.intern("FAIL0000"), dtype=np.int32)
        seq = np.arange(n)
        yield Batch.from_columns(sensor, seq, 1.7e9 + seq, 20.0 + seq % 7)
        raise SourceFailure("the sensor bus went away")


async def test_a_failing_source_stops_the_encoder_child_and_every_task(tmp_path: Path) -> None:
    config = parse_config(f"""
[daemon]
dead_letter = "{tmp_path / "dead-letter.jsonl"}"

[[sources]]
type = "test_failing_source"

[[sinks]]
type = "jsonl"
path = "{tmp_path / "out.jsonl"}"
spool_dir = "{tmp_path / "spool"}"
""")
    state = RunState.fresh(config.daemon.dead_letter)
    before = set(asyncio.all_tasks())
    with pytest.raises(SourceFailure):
        await Pipeline(config, state).run()
    assert state.counters.written == 100
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 100
    assert multiprocessing.active_children() == []  # the encoder child was closed and reaped
    assert set(asyncio.all_tasks()) == before
