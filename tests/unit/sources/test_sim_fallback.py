"""The simulated source's `fallback`: what a failed read emits (last-known-good, an interpolated
value once the next good read is in, or nothing), checked against an oracle that recomputes
every reading from the model, which is a pure function of (seed, sensor, seq / read attempt)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.batch import QUALITIES, Batch
from daemon.config.fields import ConfigIssue, build
from daemon.sources.simulated import SimulatedSource
from daemon.sources.simulated.fallback import release_held
from daemon.sources.simulated.generate import Chunk, generate
from daemon.sources.simulated.model import SensorModel, SensorState
from tests.support import TestContext

Config = SimulatedSource.Config
Row = tuple[int, float, float, str]  # seq, ts, value, quality
RATE = 100.0


def model(
    fault_rate: float, sensors: int = 2, prefix: str = "FB", rate: float = RATE
) -> SensorModel:
    return SensorModel.build(
        sensors=sensors,
        seed=21,
        rate_hz=rate,
        id_prefix=prefix,
        anomaly_rate=0.0,
        fault_rate=fault_rate,
    )


def rows_of(batches: list[Batch]) -> dict[str, list[Row]]:
    """Every emitted reading per sensor, in the order emitted."""
    out: dict[str, list[Row]] = defaultdict(list)
    for batch in batches:
        ids, codes = batch.sensor_ids(), batch.quality_codes()
        for i in range(len(batch)):
            out[str(ids[i])].append(
                (
                    int(batch.seq[i]),
                    float(batch.ts[i]),
                    float(batch.value[i]),
                    QUALITIES[codes[i]],
                )
            )
    return dict(out)


def oracle(
    m: SensorModel,
    sensor: int,
    reads: tuple[list[int], list[float], int],
    *,
    max_stale_s: float,
    anchor: tuple[float, float] | None = None,
) -> list[Row]:
    """What `interpolate` must emit for one sensor's consecutive reads, computed the slow way:
    a failed read between two good ones is on their line (in time, to 3 decimals) unless the
    sensor went longer than `max_stale_s` without a good read in that gap, in which case it, like
    a gap the stream ended in, repeats the last good value. `reads`: seqs, their timestamps and
    the read attempt of the first."""
    seq, ts, attempt0 = reads
    n = len(seq)
    idx = np.full(n, sensor, dtype=np.int64)
    good_value = m.values(idx, np.array(seq, dtype=np.int64))
    failed = m.failed(idx, attempt0 + np.arange(n, dtype=np.int64))
    out: list[Row] = []
    last = anchor  # (ts, value) of the last good read
    k = 0
    while k < n:
        if not failed[k]:
            last = (ts[k], float(good_value[k]))
            out.append((seq[k], ts[k], last[1], "ok"))
            k += 1
            continue
        end = k
        while end < n and failed[end]:
            end += 1
        assert last is not None, "a failed read with no good read before it"
        t0, v0 = last
        closed = end < n and ts[end - 1] - t0 <= max_stale_s
        for j in range(k, end):
            if closed:
                t1, v1 = ts[end], float(good_value[end])
                exact = v0 + (v1 - v0) * ((ts[j] - t0) / (t1 - t0))
                value = float(np.rint(exact * 1000.0) / 1000.0)  # the sensor's resolution
                assert abs(value - exact) <= 0.0005 + 1e-9
                out.append((seq[j], ts[j], value, "interpolated"))
            else:
                out.append((seq[j], ts[j], v0, "stale"))
        k = end
    return out


def start_state(m: SensorModel, sensors: int) -> SensorState:
    """Every sensor has read well once, at t=999 (value 50), so any read may fail."""
    state = SensorState()
    state.grow(sensors)
    state.has_good[:] = True
    state.last_value[:] = 50.0
    state.last_good_ts[:] = 999.0
    return state


def failing_run(m: SensorModel, sensor: int, length: int, after: int = 0) -> int:
    """The first attempt from which `length` reads in a row fail, preceded by a good one."""
    attempt = after + 1
    while True:
        fails = m.failed(np.full(length + 1, sensor), attempt - 1 + np.arange(length + 1))
        if not fails[0] and fails[1:].all():
            return attempt
        attempt += 1


def test_the_default_is_what_the_source_always_did() -> None:
    assert Config().fallback == "last_known_good"
    issues: list[ConfigIssue] = []
    assert build(Config, {"fallback": "guess"}, "sources[0]", issues) is None
    assert len(issues) == 1 and str(issues[0]).startswith("sources[0].fallback: ")
    assert "interpolate" in str(issues[0])


def test_a_gap_inside_a_batch_is_interpolated_and_an_open_one_is_held() -> None:
    m = model(fault_rate=0.3)
    lkg_state, state = start_state(m, 2), start_state(m, 2)
    chunks: list[Chunk] = [(0, 0, 0, 60, 1000.0), (1, 0, 0, 60, 1000.0)]
    lkg, _ = generate(m, lkg_state, chunks, RATE, 30.0)
    batch, _ = generate(m, state, chunks, RATE, 30.0, interpolate=True)
    assert batch.interpolated is not None and batch.interpolated.any()
    assert batch.stale[batch.interpolated].all()  # an interpolated reading is a failed read too
    emitted, lkg_rows = rows_of([batch]), rows_of([lkg])
    ts = [1000.0 + k / RATE for k in range(60)]
    held = 0
    for i in range(2):
        sid = f"FB{i:04d}"
        expected = oracle(m, i, (list(range(60)), ts, 0), max_stale_s=30.0, anchor=(999.0, 50.0))
        got = emitted[sid]
        assert got == expected[: len(got)]
        # what is not emitted yet: the reads after the sensor's last good one, nothing else
        assert [r[3] for r in lkg_rows[sid][len(got) :]] == ["stale"] * (60 - len(got))
        assert lkg_rows[sid][len(got) - 1][3] == "ok"
        held += 60 - len(got)
        # the good reads are the same whatever the fallback
        assert [r for r in got if r[3] == "ok"] == [
            r for r in lkg_rows[sid][: len(got)] if r[3] == "ok"
        ]
    assert held == len(state.held) > 0  # the seed leaves at least one sensor's tail open
    assert state.next_seq.tolist() == [60, 60]  # the held seqs are issued: never again


def test_a_held_read_is_interpolated_once_the_next_batch_reads_well() -> None:
    m = model(fault_rate=0.3, sensors=1)
    attempt = failing_run(m, 0, 3)  # a good read, then three failures
    state = start_state(m, 1)
    state.attempts[0] = attempt - 1
    first, _ = generate(m, state, [(0, 0, attempt - 1, 4, 1000.0)], RATE, 30.0, interpolate=True)
    assert first.seq.tolist() == [0] and len(state.held) == 3
    nxt = attempt + 3
    while m.failed_one(0, nxt):  # the next batch starts at the next good read
        nxt += 1
    later = 1000.0 + 4 / RATE
    second, _ = generate(m, state, [(0, 4, nxt, 2, later)], RATE, 30.0, interpolate=True)
    assert second.seq.tolist() == [1, 2, 3, 4, 5] and len(state.held) == 0
    codes = [QUALITIES[c] for c in second.quality_codes()]
    assert codes[:3] == ["interpolated"] * 3 and codes[3] == "ok"
    v0, v1 = first.value[0], second.value[3]
    t0, t1 = first.ts[0], second.ts[3]
    for k in range(3):
        share = (second.ts[k] - t0) / (t1 - t0)
        assert second.value[k] == pytest.approx(round(v0 + (v1 - v0) * share, 3), abs=1e-12)
        assert min(v0, v1) - 1e-9 <= second.value[k] <= max(v0, v1) + 1e-9


def test_a_gap_longer_than_max_stale_s_is_last_known_good_and_never_held() -> None:
    m = model(fault_rate=0.3, sensors=1)
    attempt = failing_run(m, 0, 4)
    state = start_state(m, 1)
    chunk: Chunk = (0, 0, attempt - 1, 5, 1000.0)  # good, then 4 failures 10 ms apart
    batch, transitions = generate(m, state, [chunk], RATE, 0.025, interpolate=True)
    assert [QUALITIES[c] for c in batch.quality_codes()] == ["ok"] + ["stale"] * 4
    assert (batch.value[1:] == batch.value[0]).all()
    assert len(state.held) == 0
    assert [t.event for t in transitions] == ["sensor_down"]  # the same story as ever


def test_release_emits_what_is_held_as_last_known_good() -> None:
    m = model(fault_rate=0.3, sensors=1)
    attempt = failing_run(m, 0, 2)
    state = start_state(m, 1)
    first, _ = generate(m, state, [(0, 0, attempt - 1, 3, 1000.0)], RATE, 30.0, interpolate=True)
    rest = release_held(m, state)
    assert rest is not None and rest.seq.tolist() == [1, 2]
    assert rest.stale.all() and rest.interpolated is None
    assert (rest.value == first.value[0]).all()
    assert release_held(m, state) is None


def make(tmp_path: Path, **config: Any) -> tuple[SimulatedSource, TestContext]:
    ctx = TestContext("sources[0]", str(tmp_path / "dead-letter.jsonl"))
    return SimulatedSource(Config(**config), ctx), ctx


async def run(src: SimulatedSource) -> list[Batch]:
    await src.open()
    try:
        async with asyncio.timeout(20):
            return [batch async for batch in src.stream()]
    finally:
        await src.close()


def leading_failures(m: SensorModel, sensor: int) -> int:
    attempt = 0
    while m.failed_one(sensor, attempt):
        attempt += 1
    return attempt


SOURCE: dict[str, Any] = {
    "sensors": 4,
    "rate_hz": 1e5,
    "max_readings": 1500,
    "fault_rate": 0.4,
    "seed": 21,
    "anomaly_rate": 0.0,
    "min_tick_s": 0.01,
    "id_prefix": "FBS",
    "max_stale_s": 0.0001,  # 10 readings at 1e5 Hz: some gaps are interpolated, some too long
}


@pytest.mark.parametrize("max_batch", [4096, 7])
async def test_interpolate_emits_every_seq_once_as_the_oracle_says(
    tmp_path: Path, max_batch: int
) -> None:
    src, ctx = make(tmp_path, fallback="interpolate", max_batch=max_batch, **SOURCE)
    emitted = rows_of(await run(src))
    m = model(0.4, sensors=4, prefix="FBS", rate=1e5)
    kinds: set[str] = set()
    for i in range(4):
        rows = emitted[f"FBS{i:04d}"]
        assert [r[0] for r in rows] == list(range(1500))  # in seq order, none missing or twice
        seqs, ts = [r[0] for r in rows], [r[1] for r in rows]
        assert rows == oracle(m, i, (seqs, ts, leading_failures(m, i)), max_stale_s=0.0001)
        kinds |= {r[3] for r in rows}
    assert kinds == {"ok", "stale", "interpolated"}  # the seed exercises every outcome
    assert ctx.counters.read_failures == sum(leading_failures(m, i) for i in range(4))


async def test_none_emits_only_good_reads_and_counts_the_failed_ones(tmp_path: Path) -> None:
    src, ctx = make(tmp_path, fallback="none", **SOURCE)
    emitted = rows_of(await run(src))
    m = model(0.4, sensors=4, prefix="FBS", rate=1e5)
    failures = 0
    for i in range(4):
        lead = leading_failures(m, i)
        failed = m.failed(np.full(1500, i), lead + np.arange(1500))
        rows = emitted[f"FBS{i:04d}"]
        assert [r[0] for r in rows] == np.flatnonzero(~failed).tolist()  # gaps where reads failed
        assert {r[3] for r in rows} == {"ok"}
        good = m.values(np.full(len(rows), i), np.array([r[0] for r in rows]))
        assert [r[2] for r in rows] == good.tolist()
        failures += lead + int(failed.sum())
    assert ctx.counters.read_failures == failures


async def test_last_known_good_is_unchanged(tmp_path: Path) -> None:
    default, _ = make(tmp_path, **SOURCE)
    explicit, _ = make(tmp_path, fallback="last_known_good", **SOURCE)
    a, b = rows_of(await run(default)), rows_of(await run(explicit))
    untimed = [{k: [(r[0], r[2], r[3]) for r in v] for k, v in x.items()} for x in (a, b)]
    assert untimed[0] == untimed[1]  # the timestamps are the wall clock's, the rest is the seed's
    assert {r[3] for rows in a.values() for r in rows} == {"ok", "stale"}


async def test_held_reads_survive_a_rebuild_and_a_walk_away(tmp_path: Path) -> None:
    """A consumer that walks away (a forced end) leaves held reads in the carried state; the
    next generation emits them before anything newer. A stop releases them."""
    ctx = TestContext("sources[0]", str(tmp_path / "dead-letter.jsonl"))
    config: dict[str, Any] = {
        "sensors": 5,
        "rate_hz": 1e6,
        "max_batch": 100,
        "fault_rate": 0.3,
        "fallback": "interpolate",
        "id_prefix": "FBR",
    }
    got: list[Batch] = []
    first = SimulatedSource(Config(**config), ctx)
    await first.open()
    async with contextlib.aclosing(first.stream()) as stream:
        async for batch in stream:
            got.append(batch)
            if len(got) == 3:
                break
    assert len(first._state.held) > 0  # the seed leaves reads held at the walk-away

    ctx.new_generation()
    second = SimulatedSource(Config(**config), ctx)
    await second.open()
    async for batch in second.stream():
        got.append(batch)
        if len(got) == 8:
            ctx.lifetime.stop.set()
    assert len(second._state.held) == 0  # released at the stop

    ctx.new_generation()
    got += await run(SimulatedSource(Config(max_readings=1000, **config), ctx))
    emitted = rows_of(got)
    for i in range(5):
        assert [r[0] for r in emitted[f"FBR{i:04d}"]] == list(range(1000))
    assert {r[3] for rows in emitted.values() for r in rows} == {"ok", "stale", "interpolated"}
