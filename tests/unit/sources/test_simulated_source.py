"""The simulated source end to end: determinism, seqs, pacing, faults, stop and reload."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.config.fields import ConfigIssue, build
from daemon.registry import REGISTRY
from daemon.sources.simulated import SimulatedSource
from daemon.sources.simulated.model import SensorModel
from tests.support import TestContext

Config = SimulatedSource.Config
Readings = dict[str, list[tuple[int, float, float, bool]]]  # sensor_id -> (seq, ts, value, stale)


def new_ctx(tmp_path: Path, label: str = "sources[0]") -> TestContext:
    """A fresh run (counters, carry, stop flag) whose dead-letter file is under tmp_path."""
    return TestContext(label, str(tmp_path / "dead-letter.jsonl"))


async def collect(stream: AsyncIterator[Batch]) -> list[Batch]:
    return [batch async for batch in stream]


def by_sensor(batches: list[Batch]) -> Readings:
    """Readings per sensor, in the order they were yielded."""
    out: Readings = defaultdict(list)
    for batch in batches:
        ids = batch.sensor_ids()
        for i in range(len(batch)):
            out[str(ids[i])].append(
                (
                    int(batch.seq[i]),
                    float(batch.ts[i]),
                    float(batch.value[i]),
                    bool(batch.stale[i]),
                )
            )
    return dict(out)


def make(ctx: TestContext, **config: Any) -> SimulatedSource:
    return SimulatedSource(Config(**config), ctx)


async def run(src: SimulatedSource) -> list[Batch]:
    await src.open()
    try:
        async with asyncio.timeout(20):
            return await collect(src.stream())
    finally:
        await src.close()


def values(readings: Readings) -> dict[str, list[tuple[int, float, bool]]]:
    return {sid: [(seq, v, st) for seq, _, v, st in rows] for sid, rows in readings.items()}


def leading_failures(model: SensorModel, sensor: int) -> int:
    attempt = 0
    while model.failed_one(sensor, attempt):
        attempt += 1
    return attempt


async def test_registered_and_validated() -> None:
    entry = REGISTRY.get("source", "simulated")
    assert entry is not None and entry.cls is SimulatedSource
    issues: list[ConfigIssue] = []
    assert (
        build(Config, {"sensors": 0, "rate_hz": 0, "fault_rate": 1.5}, "sources[0]", issues) is None
    )
    assert [str(i) for i in issues] == [
        "sources[0].sensors: must be >= 1, got 0",
        "sources[0].rate_hz: must be > 0, got 0",
        "sources[0].fault_rate: must be <= 1, got 1.5",
    ]


async def test_same_seed_same_readings_however_chunked(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "sensors": 6,
        "rate_hz": 1e6,
        "max_readings": 700,
        "anomaly_rate": 0.2,
        "fault_rate": 0.3,
        "seed": 7,
        "min_tick_s": 0.01,
        "id_prefix": "DET",
    }
    whole = values(by_sensor(await run(make(new_ctx(tmp_path), max_batch=4096, **common))))
    small = make(new_ctx(tmp_path), max_batch=13, max_latency_ms=1, **common)
    chopped = values(by_sensor(await run(small)))
    assert whole == chopped
    assert sorted(whole) == [f"DET{i:04d}" for i in range(6)]

    # Good reads are a pure function of (seed, sensor, seq): recompute them directly.
    model = SensorModel.build(
        sensors=6, seed=7, rate_hz=1e6, id_prefix="DET", anomaly_rate=0.2, fault_rate=0.3
    )
    for i in range(6):
        good = [(seq, v) for seq, v, stale in whole[f"DET{i:04d}"] if not stale]
        seqs = np.array([seq for seq, _ in good], dtype=np.int64)
        expected = model.values(np.full(seqs.shape[0], i, dtype=np.int64), seqs)
        np.testing.assert_array_equal(expected, [v for _, v in good])

    other = values(by_sensor(await run(make(new_ctx(tmp_path), **{**common, "seed": 8}))))
    assert other != whole


async def test_anomalies_spike_both_inside_and_outside_the_threshold(tmp_path: Path) -> None:
    src = make(new_ctx(tmp_path), sensors=10, rate_hz=1e6, max_readings=2000, anomaly_rate=0.05)
    value = np.concatenate([b.value for b in await run(src)])
    outside = (value < 10.0) | (value > 100.0)
    assert 0.005 < outside.mean() < 0.05  # some spikes leave 10..100, most readings do not
    quiet = np.concatenate(
        [
            b.value
            for b in await run(
                make(
                    new_ctx(tmp_path), sensors=10, rate_hz=1e6, max_readings=2000, anomaly_rate=0.0
                )
            )
        ]
    )
    assert ((quiet >= 10.0) & (quiet <= 100.0)).all()


async def test_seqs_have_no_gaps_and_max_readings_is_exact(tmp_path: Path) -> None:
    src = make(
        new_ctx(tmp_path),
        sensors=25,
        rate_hz=1e5,
        max_readings=400,
        max_batch=256,
        id_prefix="SEQ",
    )
    batches = await run(src)  # ends by itself once every sensor has emitted 400
    assert all(len(b) <= 256 for b in batches)
    readings = by_sensor(batches)
    assert sorted(readings) == [f"SEQ{i:04d}" for i in range(25)]
    for rows in readings.values():
        assert [seq for seq, *_ in rows] == list(range(400))
        ts = np.array([t for _, t, *_ in rows])
        assert (np.diff(ts) > 0).all()


async def test_pacing_honours_rate_hz(tmp_path: Path) -> None:
    rate, n = 40.0, 8
    wall_start, start = time.time(), time.perf_counter()
    batches = await run(make(new_ctx(tmp_path), sensors=3, rate_hz=rate, max_readings=n))
    elapsed = time.perf_counter() - start
    # Reading k is due (k + 1) / rate after the start: the last one no sooner than n / rate.
    assert n / rate - 0.01 <= elapsed < n / rate + 1.0
    for rows in by_sensor(batches).values():
        ts = np.array([t for _, t, *_ in rows])
        np.testing.assert_allclose(np.diff(ts), 1.0 / rate, atol=1e-6)  # epoch ulp ~2e-7
        assert wall_start < ts[0] <= wall_start + 1.0 / rate + 0.05
        assert ts[-1] <= time.time()


async def test_each_sensor_is_stamped_at_its_own_phase_and_never_emitted_early(
    tmp_path: Path,
) -> None:
    # tick 0.05 s, beats every 0.01 s: five phases, sensor i ticks (i % 5) * 0.01 s into each
    rate, n = 20.0, 4
    src = make(new_ctx(tmp_path), sensors=10, rate_hz=rate, max_readings=n, max_latency_ms=5.0)
    await src.open()
    yielded: list[tuple[float, Batch]] = []
    async with asyncio.timeout(20):
        async for batch in src.stream():
            yielded.append((time.time(), batch))
    for at, batch in yielded:  # a reading is emitted at its tick, not before (2 ms timer slack)
        assert float(batch.ts.max()) <= at + 0.002
    readings = by_sensor([b for _, b in yielded])
    first = np.array([t for _, t, *_ in readings["S0000"]])
    for i in range(10):
        ts = np.array([t for _, t, *_ in readings[f"S{i:04d}"]])
        np.testing.assert_allclose(ts - first, (i % 5) * 0.01, atol=1e-6)


async def test_failed_reads_repeat_the_last_good_value_marked_stale(tmp_path: Path) -> None:
    src = make(
        new_ctx(tmp_path),
        sensors=4,
        rate_hz=1e6,
        max_readings=3000,
        fault_rate=0.3,
        min_tick_s=0.01,
        max_batch=500,
        id_prefix="STALE",
    )
    readings = by_sensor(await run(src))
    for rows in readings.values():
        assert not rows[0][3]  # nothing stale before a first good read
        last_good = rows[0][2]
        for _, _, value, stale in rows:
            if stale:
                assert value == last_good
            else:
                last_good = value
        share = sum(r[3] for r in rows) / len(rows)
        assert 0.25 < share < 0.35


async def test_failures_before_any_good_read_emit_nothing_and_count(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "sensors": 8,
        "rate_hz": 1000.0,
        "fault_rate": 0.6,
        "seed": 3,
        "anomaly_rate": 0.0,
        "id_prefix": "NOGOOD",
    }
    model = SensorModel.build(
        sensors=8, seed=3, rate_hz=1000.0, id_prefix="NOGOOD", anomaly_rate=0.0, fault_rate=0.6
    )
    expected_failures = sum(leading_failures(model, i) for i in range(8))
    assert expected_failures > 0  # the seed exercises the case
    ctx = new_ctx(tmp_path)
    readings = by_sensor(await run(make(ctx, max_readings=50, min_tick_s=0.01, **config)))
    assert ctx.counters.read_failures == expected_failures
    for rows in readings.values():
        assert [seq for seq, *_ in rows] == list(range(50))
        assert not rows[0][3]


async def test_a_sensor_that_never_reads_is_reported_down(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = make(
        ctx,
        sensors=2,
        rate_hz=100.0,
        fault_rate=1.0,
        max_stale_s=0.03,
        min_tick_s=0.01,
        id_prefix="DEAD",
    )

    down: list[str] = []

    def stop_once_both_are_down(
        _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event["event"] == "sensor_down":
            down.append(event["sensor_id"])
            if len(down) == 2:
                ctx.lifetime.stop.set()
        return event

    with capture_logs(processors=[stop_once_both_are_down]) as logs:
        batches = await run(src)
    assert sum(len(b) for b in batches) == 0
    assert ctx.counters.read_failures >= 4
    downs = [e for e in logs if e["event"] == "sensor_down"]
    assert sorted(e["sensor_id"] for e in downs) == ["DEAD0000", "DEAD0001"]
    assert all(e["stale_s"] > 0.03 and e["log_level"] == "warning" for e in downs)


def expected_transitions(
    rows: list[tuple[int, float, float, bool]], leading: int, max_stale_s: float
) -> list[str]:
    """The down/recovered story of one sensor, replayed reading by reading."""
    story: list[str] = []
    down = False
    if leading >= 2:  # two failed first reads are at least a tick (>> max_stale_s) apart
        story += ["sensor_down", "sensor_recovered"]
    last_good = rows[0][1]
    for _, ts, _, stale in rows:
        if not stale:
            if down:
                story.append("sensor_recovered")
                down = False
            last_good = ts
        elif not down and ts - last_good > max_stale_s:
            story.append("sensor_down")
            down = True
    return story


async def test_sensor_down_and_recovered_are_logged_once_each(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "sensors": 3,
        "rate_hz": 1e5,
        "fault_rate": 0.85,
        "seed": 11,
        "id_prefix": "DOWN",
        "anomaly_rate": 0.0,
    }
    stale_limit = 0.0002  # 20 readings at 1e5 Hz
    with capture_logs() as logs:
        src = make(
            new_ctx(tmp_path),
            max_readings=3000,
            max_stale_s=stale_limit,
            min_tick_s=0.01,
            max_batch=300,
            **config,
        )
        readings = by_sensor(await run(src))
    model = SensorModel.build(
        sensors=3, seed=11, rate_hz=1e5, id_prefix="DOWN", anomaly_rate=0.0, fault_rate=0.85
    )
    seen = 0
    for i in range(3):
        sid = f"DOWN{i:04d}"
        story = [e["event"] for e in logs if e.get("sensor_id") == sid]
        expected = expected_transitions(readings[sid], leading_failures(model, i), stale_limit)
        assert story == expected
        seen += len(story)
        assert all(
            e["stale_s"] > stale_limit
            for e in logs
            if e.get("sensor_id") == sid and e["event"] == "sensor_down"
        )
    assert seen >= 6  # the seed exercises both transitions


async def test_stop_ends_a_flat_out_stream_promptly(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = make(ctx, sensors=50, rate_hz=1e9, max_batch=1000, queue_batches=4, id_prefix="STOP")
    await src.open()
    after_stop = 0
    stopped_at = None
    async with asyncio.timeout(10):
        async for batch in src.stream():
            if stopped_at is None:
                ctx.lifetime.stop.set()
                stopped_at = time.perf_counter()
            else:
                after_stop += len(batch)
    assert stopped_at is not None
    assert time.perf_counter() - stopped_at < 1.0
    assert after_stop <= (4 + 2) * 1000  # what was queued: the bound, one more chunk, a split


async def test_stop_wakes_sleeping_sensors_at_once(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = make(ctx, sensors=20, rate_hz=4.0, id_prefix="NAP")  # a tick is 0.25 s
    await src.open()
    stopped_at = None
    async with asyncio.timeout(10):
        async for _ in src.stream():
            if stopped_at is None:
                ctx.lifetime.stop.set()
                stopped_at = time.perf_counter()
    assert stopped_at is not None
    assert time.perf_counter() - stopped_at < 0.2


async def test_a_rebuilt_source_continues_every_sensor_without_repeats(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    config: dict[str, Any] = {"rate_hz": 1e6, "max_batch": 100, "id_prefix": "CARRY"}
    runs: list[Readings] = []

    # Run 1: the consumer walks away mid-stream, with chunks still queued.
    first = make(ctx, sensors=5, **config)
    await first.open()
    got: list[Batch] = []
    async with contextlib.aclosing(first.stream()) as stream:
        async for batch in stream:
            got.append(batch)
            if len(got) == 3:
                break
    runs.append(by_sensor(got))

    # Run 2: a reload (new flags, same carry) with more sensors, stopped after a few batches.
    ctx.new_generation()
    second = make(ctx, sensors=7, **config)
    await second.open()
    got = []
    async for batch in second.stream():
        got.append(batch)
        if len(got) == 5:
            ctx.lifetime.stop.set()
    runs.append(by_sensor(got))

    # Run 3: max_readings counts across reloads: each sensor ends at exactly 1,000.
    ctx.new_generation()
    runs.append(by_sensor(await run(make(ctx, sensors=7, max_readings=1000, **config))))

    for i in range(7):
        sid = f"CARRY{i:04d}"
        seqs = [seq for readings in runs for seq, *_ in readings.get(sid, [])]
        assert seqs == list(range(1000)), sid
    for sid, rows in runs[0].items():
        if sid in runs[1]:
            assert runs[1][sid][0][0] == rows[-1][0] + 1


async def test_a_slow_consumer_bounds_the_queue_and_loses_nothing(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = make(
        ctx,
        sensors=20,
        rate_hz=1e9,
        max_batch=200,
        queue_batches=2,
        max_readings=300,
        id_prefix="SLOW",
    )
    await src.open()
    batches: list[Batch] = []
    async with asyncio.timeout(20):
        async for batch in src.stream():
            batches.append(batch)
            assert ctx.gauge()["queued_readings"] <= 2 * 200 + 200
            await asyncio.sleep(0.001)  # a slow pipeline
    for rows in by_sensor(batches).values():
        assert [seq for seq, *_ in rows] == list(range(300))


async def test_force_ends_the_stream_without_draining(tmp_path: Path) -> None:
    ctx = new_ctx(tmp_path)
    src = make(ctx, sensors=50, rate_hz=1e9, max_batch=500, id_prefix="FORCE")
    await src.open()
    yielded = 0
    async with asyncio.timeout(10):
        async for _ in src.stream():
            yielded += 1
            ctx.lifetime.stop.set()
            ctx.lifetime.force.set()
    assert yielded == 1  # the queued batches were never read, so dropping them loses nothing


async def run_taken(src: SimulatedSource, keep: int | None = None) -> list[Batch]:
    """Run `src`, reporting each batch durably taken as the pipeline would; with `keep`, only
    the first `keep` batches are taken (the rest were in flight when the process died)."""
    await src.open()
    out: list[Batch] = []
    try:
        async with asyncio.timeout(20):
            async for batch in src.stream():
                mark = src.checkpoint(batch)
                out.append(batch)
                if mark is not None and (keep is None or len(out) <= keep):
                    src.taken(mark)
    finally:
        await src.close()
    return out


def restarted(tmp_path: Path) -> TestContext:
    """A new process's context over the same state directory."""
    return TestContext("sources[0]", str(tmp_path / "dl.jsonl"), state_dir=str(tmp_path / "st"))


async def test_seq_goes_on_across_restarts_and_max_readings_counts_a_run(tmp_path: Path) -> None:
    config = {
        "sensors": 3,
        "rate_hz": 10_000,
        "max_readings": 40,
        "max_batch": 16,
        "id_prefix": "RESTART",
    }
    ctx = restarted(tmp_path)
    first = by_sensor(await run_taken(make(ctx, **config)))
    ctx.state.store.flush()
    second_ctx = restarted(tmp_path)
    second = by_sensor(await run_taken(make(second_ctx, **config)))
    for sid in first:
        seqs = [seq for seq, *_ in first[sid]] + [seq for seq, *_ in second[sid]]
        assert seqs == list(range(80)), sid  # no repeat, no gap, 40 a run
    # The values are the sensor's own at those seqs, as if it had never stopped (without read
    # faults: which reads fail, and so which readings are stale, is drawn per read attempt).
    whole = by_sensor(await run(make(new_ctx(tmp_path), **{**config, "max_readings": 80})))
    for sid, rows in whole.items():
        assert [v for _, _, v, _ in rows] == [v for _, _, v, _ in first[sid] + second[sid]]


async def test_after_a_crash_only_what_was_in_flight_is_emitted_again(tmp_path: Path) -> None:
    config = {
        "sensors": 2,
        "rate_hz": 10_000,
        "max_readings": 64,
        "max_batch": 8,
        "id_prefix": "CRASH",
    }
    ctx = restarted(tmp_path)
    batches = await run_taken(make(ctx, **config), keep=3)  # the rest never durably taken
    ctx.state.store.flush()
    taken = by_sensor(batches[:3])
    again = by_sensor(await run_taken(make(restarted(tmp_path), **config)))
    for sid, rows in again.items():
        first_again = rows[0][0]
        assert first_again == (taken[sid][-1][0] + 1 if sid in taken else 0)
