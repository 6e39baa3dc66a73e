"""A tap keeps what its reader asked for, bounded: past `max_records` it drops and counts, and
the data path only offers batches to points that have taps."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.observability.health import StageStats
from daemon.observability.tap import Tap, TapBoard
from daemon.stages.threshold import ThresholdFilter, ThresholdFilterConfig
from daemon.topology.flow import chain
from daemon.wire.encode import WIRE, encode_batch
from tests.support import TestContext


def batch(n: int, *, start: int = 0, derived: list[dict[str, Any]] | None = None) -> Batch:
    b = Batch.of_sensor(
        "TAP01", np.arange(start, start + n), 1.7e9 + np.arange(n), np.arange(n) * 1.5
    )
    b.derived = derived or []
    return b


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def test_records_are_the_wire_format_with_iso_timestamps() -> None:
    tap = Tap("stages[0]")
    tap.offer(batch(3, derived=[{"kind": "features", "sensor_id": "TAP01", "mean": 1.0}]))
    records, data = tap.take()
    got = lines(data)
    assert records == 4
    assert [r["kind"] for r in got] == ["reading", "reading", "reading", "features"]
    assert [r["seq"] for r in got[:3]] == [0, 1, 2]
    assert got[0]["sensor_id"] == "TAP01"
    stamps = [dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in got[:3]]
    assert [s.timestamp() for s in stamps] == [1.7e9, 1.7e9 + 1, 1.7e9 + 2]
    assert tap.take() == (0, b"")  # taken once


def test_kind_selects_readings_or_one_kind_of_derived_record() -> None:
    derived: list[dict[str, Any]] = [
        {"kind": "features", "n": 1},
        {"kind": "alert", "state": "firing"},
    ]
    readings, alerts = Tap("s", kind="reading"), Tap("s", kind="alert")
    for tap in (readings, alerts):
        tap.offer(batch(2, derived=derived))
    assert [r["kind"] for r in lines(readings.take()[1])] == ["reading", "reading"]
    assert lines(alerts.take()[1]) == [{"kind": "alert", "state": "firing"}]


def test_a_full_buffer_drops_whole_batches_and_counts_them() -> None:
    tap = Tap("stages[0]", max_records=10)
    tap.offer(batch(6))
    tap.offer(batch(6))  # 12 > 10: dropped, the first stays
    tap.offer(batch(4))  # fits exactly
    assert (tap.buffered, tap.dropped) == (10, 6)
    records, data = tap.take()
    assert records == 10 and len(data.splitlines()) == 10
    tap.offer(batch(25))  # larger than the buffer, but the buffer is empty: kept whole
    assert (tap.buffered, tap.dropped) == (25, 6)


@pytest.mark.parametrize("sample", [0.3, 0.01])  # a draw per reading; a count, then which
def test_sampling_keeps_about_the_fraction_asked_for(sample: float) -> None:
    tap = Tap("stages[0]", sample=sample, seed=3, max_records=100_000)
    for i in range(40):
        tap.offer(batch(1000, start=i * 1000))
    records, data = tap.take()
    expected = 40_000 * sample  # binomial sd: ~92 and ~20
    assert expected * 0.8 < records < expected * 1.2
    seqs = [r["seq"] for r in lines(data)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # a subset, in order


def test_the_limit_cuts_the_batch_and_ends_the_tap() -> None:
    tap = Tap("stages[0]", limit=5)
    tap.offer(batch(3))
    tap.offer(batch(3, start=3))
    tap.offer(batch(3, start=6))  # nothing more is accepted
    assert not tap.done  # two batches still to hand out
    records, data = tap.take()
    assert records == 5
    assert [r["seq"] for r in lines(data)] == [0, 1, 2, 3, 4]
    assert tap.done


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Tap("s", kind="feature")
    with pytest.raises(ValueError, match="sample"):
        Tap("s", sample=0.0)
    with pytest.raises(ValueError, match="limit"):
        Tap("s", limit=0)


def test_the_board_counts_sink_taps_and_keeps_totals_after_detach() -> None:
    board = TapBoard()
    stage, sink = Tap("stages[1]"), Tap("sinks[0]")
    board.attach(stage)
    board.attach(sink)
    assert board.sink_taps == 1
    assert board.point("stages[1]").taps == (stage,)
    sink.offer(batch(4))
    sink.take()
    board.detach(sink)
    board.detach(sink)  # twice: no double count
    assert board.sink_taps == 0 and sink.closed
    assert board.describe()["sent"] == 4
    assert [t["at"] for t in board.describe()["attached"]] == ["stages[1]"]


async def test_the_chain_shows_each_stage_output_to_its_taps(tmp_path: Path) -> None:
    ctx = TestContext("stages[0]", str(tmp_path / "dead-letter.jsonl"))
    stage = ThresholdFilter(ThresholdFilterConfig(min=0.0, max=3.0), ctx)
    board = TapBoard()
    queue: asyncio.Queue[Batch | None] = asyncio.Queue()
    for b in (batch(4), batch(4, start=4)):
        queue.put_nowait(b)
    queue.put_nowait(None)
    tap = Tap("stages[0]")
    board.attach(tap)
    out = [b async for b in _all(chain(queue, [stage], {"stages[0]": StageStats()}, board))]
    assert sum(len(b) for b in out) == 6  # 0, 1.5, 3.0 of each batch pass the filter
    records, data = tap.take()
    assert records == 6
    assert all(r["value"] <= 3.0 for r in lines(data))


async def _all(stream: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
    async for b in stream:
        yield b


def test_bytes_the_encoder_child_made_are_shown_as_they_are() -> None:
    b = batch(3, derived=[{"kind": "alert", "state": "firing"}])
    ahead = encode_batch(b)
    b.remember(WIRE, memoryview(ahead))  # what `wire.ahead` leaves on a batch for the sinks
    whole, readings = Tap("sinks[0]"), Tap("sinks[0]", kind="reading")
    for tap in (whole, readings):
        tap.offer(b)
    assert whole.take() == (4, ahead)
    assert [r["kind"] for r in lines(readings.take()[1])] == ["reading"] * 3
