"""features: the math against the definitions of DESIGN.md, and the stage (inline, workers=0)
against a per-record tumbling-window reference, across sensors and batch splits."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.batch import Batch, FloatArray
from daemon.config.fields import ConfigIssue, build
from daemon.sensors import SENSORS
from daemon.stages.features.stage import Features
from daemon.stages.features.window_math import FEATURE_NAMES, compute
from tests.support import TestContext, levers

Reading = tuple[str, int, float, float]  # sensor_id, seq, ts, value


def window_features_ref(values: Sequence[float], ts: Sequence[float]) -> dict[str, float]:
    """The definitions, one window, plain Python; numpy only where the definition is numpy's."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    t_mean = statistics.fmean(ts)
    sxx = math.fsum((t - t_mean) ** 2 for t in ts)
    sxy = math.fsum((t - t_mean) * (v - mean) for t, v in zip(ts, values, strict=True))
    spacing = (ts[-1] - ts[0]) / (n - 1)
    dominant = 0.0
    if std > 0 and spacing > 0:
        magnitudes = np.abs(np.fft.rfft(values)).tolist()
        peak = max(range(1, len(magnitudes)), key=lambda k: magnitudes[k])
        dominant = peak / (n * spacing)
    return {
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "slope": sxy / sxx if sxx > 0 else 0.0,
        "p95": float(np.percentile(values, 95)),
        "dominant_hz": dominant,
        "anomaly_score": max(abs(v - mean) for v in values) / std if std > 0 else 0.0,
    }


def features_ref(readings: Sequence[Reading], window: int) -> list[dict[str, Any]]:
    """Every completed tumbling window's record, in the order the stream completes them."""
    open_windows: dict[str, list[Reading]] = defaultdict(list)
    out = []
    for reading in readings:
        current = open_windows[reading[0]]
        current.append(reading)
        if len(current) == window:
            values = [r[3] for r in current]
            ts = [r[2] for r in current]
            head = {"sensor_id": reading[0], "window_end_seq": reading[1], "count": window}
            out.append({"kind": "features", **head, **window_features_ref(values, ts)})
            current.clear()
    return out


def assert_close(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for key, expected in want.items():
        if isinstance(expected, float):
            assert type(got[key]) is float, key
            assert math.isclose(got[key], expected, rel_tol=1e-9, abs_tol=1e-9), (key, got, want)
        else:
            assert got[key] == expected, (key, got, want)


def assert_records_match(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w)


def as_dicts(result: FloatArray) -> list[dict[str, float]]:
    return [dict(zip(FEATURE_NAMES, row, strict=True)) for row in result.tolist()]


# -- the math --------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [2, 3, 16, 257])
def test_random_windows_match_the_definitions(window: int) -> None:
    rng = np.random.default_rng(window)
    values = rng.normal(40, 12, (25, window))
    ts = 1.7e9 + np.cumsum(rng.uniform(0.01, 0.3, (25, window)), axis=1)  # irregular spacing
    for got, v, t in zip(as_dicts(compute(values, ts)), values, ts, strict=True):
        assert_close(got, window_features_ref(v.tolist(), t.tolist()))


def test_a_sine_wave_reports_its_frequency_and_a_ramp_its_slope() -> None:
    ts = 1.7e9 + np.arange(200) / 100.0  # 100 Hz sampling
    sine = 50 + 3 * np.sin(2 * np.pi * 5.0 * (ts - ts[0]))
    ramp = 10 + 0.5 * (ts - ts[0])
    sine_f, ramp_f = as_dicts(compute(np.stack([sine, ramp]), np.stack([ts, ts])))
    assert sine_f["dominant_hz"] == pytest.approx(5.0)
    assert sine_f["mean"] == pytest.approx(50.0)
    assert ramp_f["slope"] == pytest.approx(0.5)


def test_constant_values_have_zero_spread_slope_and_frequency() -> None:
    ts = np.full((1, 64), 1.7e9) + np.arange(64) * 0.1
    (got,) = as_dicts(compute(np.full((1, 64), 0.1), ts))
    assert (got["std"], got["anomaly_score"], got["dominant_hz"], got["slope"]) == (0, 0, 0, 0)
    assert got["mean"] == got["min"] == got["max"] == got["p95"] == 0.1


def test_equal_timestamps_leave_slope_and_frequency_zero() -> None:
    (got,) = as_dicts(compute(np.array([[1.0, 5.0, 2.0, 8.0]]), np.full((1, 4), 1.7e9)))
    assert (got["slope"], got["dominant_hz"]) == (0.0, 0.0)
    assert got["std"] > 0


def test_no_windows_and_too_short_windows() -> None:
    assert compute(np.empty((0, 8)), np.empty((0, 8))).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match=">= 2"):
        compute(np.ones((1, 1)), np.ones((1, 1)))


# -- the stage, inline -----------------------------------------------------------------------


def readings_of(rows: Iterable[tuple[int, float]], prefix: str) -> list[Reading]:
    """A stream from (sensor number, value) rows; seq counts per sensor, ts is irregular."""
    seqs: dict[int, int] = defaultdict(int)
    out = []
    for sensor, value in rows:
        seq = seqs[sensor]
        seqs[sensor] += 1
        out.append((f"{prefix}{sensor}", seq, 1.7e9 + seq * 0.5 + (seq * seq % 7) * 0.01, value))
    return out


def batches_of(readings: Sequence[Reading], cuts: Iterable[int]) -> list[Batch]:
    edges = [0, *sorted({c for c in cuts if 0 < c < len(readings)}), len(readings)]
    return [
        Batch.from_columns(
            [SENSORS.intern(r[0]) for r in readings[lo:hi]],
            [r[1] for r in readings[lo:hi]],
            [r[2] for r in readings[lo:hi]],
            [r[3] for r in readings[lo:hi]],
        )
        for lo, hi in itertools.pairwise(edges)
    ]


async def run(
    window: int, batches: list[Batch], ctx: TestContext | None = None
) -> tuple[Features, list[Batch]]:
    stage = Features(Features.Config(window=window, workers=0), ctx or TestContext())

    async def feed() -> AsyncIterator[Batch]:
        for batch in batches:
            yield batch

    return stage, [batch async for batch in stage.process(feed())]


def check_stream(out: list[Batch], readings: list[Reading]) -> None:
    """Every reading passes in order; each record rides with the batch that completed it."""
    rows = [(sid, int(q)) for b in out for sid, q in zip(b.sensor_ids(), b.seq, strict=True)]
    assert rows == [(r[0], r[1]) for r in readings]
    for batch in out:
        here = set(zip(batch.sensor_ids(), batch.seq.tolist(), strict=True))
        assert all((d["sensor_id"], d["window_end_seq"]) in here for d in batch.derived)


def records(out: list[Batch]) -> list[dict[str, Any]]:
    return [d for b in out for d in b.derived]


values = st.one_of(
    st.integers(0, 3).map(float), st.integers(-(10**7), 10**7).map(lambda i: i / 1000)
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), values), max_size=150),
    cuts=st.lists(st.integers(0, 150), max_size=8),
    window=st.integers(2, 9),
)
async def test_interleaved_sensors_any_split(
    rows: list[tuple[int, float]], cuts: list[int], window: int
) -> None:
    readings = readings_of(rows, "F")
    stage, out = await run(window, batches_of(readings, cuts))
    check_stream(out, readings)
    assert_records_match(records(out), features_ref(readings, window))
    assert levers(stage).counters.features == len(records(out))


async def test_many_sensors_and_batches_completing_several_windows_of_one_sensor() -> None:
    rng = np.random.default_rng(3)
    wide = readings_of([(i, x) for x in rng.normal(20, 4, 9) for i in range(1_000)], "FW")
    long = readings_of(
        zip(rng.integers(0, 2, 1_000).tolist(), rng.normal(0, 1, 1_000), strict=True), "FL"
    )
    for readings, cuts in ((wide, [2_000, 2_001, 5_777]), (long, [1, 333, 900])):
        _, out = await run(4, batches_of(readings, cuts))
        check_stream(out, readings)
        assert_records_match(records(out), features_ref(readings, 4))


async def test_windows_continue_across_a_reload_with_the_same_size() -> None:
    readings = readings_of([(i % 3, float(i % 7)) for i in range(100)], "FR")
    ctx = TestContext()
    _, out = await run(8, batches_of(readings[:37], [11]), ctx)
    _, more = await run(8, batches_of(readings[37:], [5]), ctx)  # rebuilt stage, same carry
    assert_records_match(records(out + more), features_ref(readings, 8))


async def test_existing_derived_records_are_kept_and_empty_batches_dropped() -> None:
    first = Batch.of_sensor("FD0", [0, 1], [0.0, 1.0], [1.0, 3.0])
    first.derived.append({"kind": "alert"})
    _, out = await run(2, [first, Batch.of_sensor("FD0", [], [], [])])
    assert len(out) == 1
    assert [d["kind"] for d in out[0].derived] == ["alert", "features"]
    assert out[0].derived[1]["mean"] == 2.0


def test_config_bounds() -> None:
    issues: list[ConfigIssue] = []
    assert build(Features.Config, {"window": 1}, "stages[3]", issues) is None
    assert [str(i) for i in issues] == ["stages[3].window: must be >= 2, got 1"]
    issues.clear()
    got = build(Features.Config, {"window": 64, "workers": 0}, "s", issues)
    assert got == Features.Config(window=64, workers=0)


def test_no_feature_is_negative_zero() -> None:
    values = np.array([[-0.0, -0.0, -0.0, -0.0], [5.0, 4.0, 3.0, 2.0]])
    ts = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])  # the second: no time passes
    out = compute(values, ts)
    assert not np.signbit(out[out == 0.0]).any()
