"""normalize and moving_average against per-record references, across sensors and batch splits.

The references are the definitions written the obvious way: one reading at a time, a deque per
sensor, the result rounded to 6 decimal places. The stages must agree whatever the mix of sensors
and wherever the batches are cut.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.stages.moving_average import MovingAverage
from daemon.stages.normalize import Normalize
from tests.support import TestContext

Reading = tuple[str, int, float]  # sensor_id, seq, value


def readings_of(rows: Iterable[tuple[int, float]], prefix: str) -> list[Reading]:
    """A stream from (sensor number, value) rows; each sensor's seq counts from 0."""
    seqs: dict[int, int] = defaultdict(int)
    out = []
    for sensor, value in rows:
        out.append((f"{prefix}{sensor}", seqs[sensor], value))
        seqs[sensor] += 1
    return out


def batches_of(readings: Sequence[Reading], cuts: Iterable[int]) -> list[Batch]:
    edges = [0, *sorted({c for c in cuts if 0 < c < len(readings)}), len(readings)]
    return [
        Batch.from_columns(
            [SENSORS.intern(r[0]) for r in readings[lo:hi]],
            [r[1] for r in readings[lo:hi]],
            [1.7e9 + r[1] for r in readings[lo:hi]],
            [r[2] for r in readings[lo:hi]],
        )
        for lo, hi in itertools.pairwise(edges)
    ]


def round6(x: float) -> float:
    """The stages' documented rounding: the nearest multiple of 1e-6, half to even."""
    return round(x * 1e6) / 1e6


def near_tie(x: float) -> bool:
    """Whether x sits (within float error) halfway between two multiples of 1e-6, where a mean
    summed in another order may round the other way."""
    scaled = x * 1e6
    return abs(abs(scaled - math.floor(scaled)) - 0.5) <= max(1e-9, abs(scaled) * 1e-14)


def normalize_ref(readings: Sequence[Reading], window: int) -> list[float]:
    recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
    out = []
    for sensor_id, _, value in readings:
        values = recent[sensor_id]
        values.append(value)
        lo, hi = min(values), max(values)
        out.append(0.0 if hi == lo else round6((value - lo) / (hi - lo)))
    return out


def moving_average_ref(readings: Sequence[Reading], window: int) -> list[float]:
    """The exact means (fmean sums exactly), before rounding."""
    recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
    out = []
    for sensor_id, _, value in readings:
        recent[sensor_id].append(value)
        out.append(statistics.fmean(recent[sensor_id]))
    return out


async def feed(batches: Iterable[Batch]) -> AsyncIterator[Batch]:
    for batch in batches:
        yield batch


async def run_both(
    batches: list[Batch], norm_window: int, avg_window: int, ctx: TestContext | None = None
) -> list[Batch]:
    """The two stages chained as in the pipeline."""
    ctx = ctx or TestContext()
    norm = Normalize(Normalize.Config(window=norm_window), ctx)
    avg = MovingAverage(MovingAverage.Config(window=avg_window), ctx)
    return [batch async for batch in avg.process(norm.process(feed(batches)))]


def column(batches: Sequence[Batch], name: str) -> list[float]:
    return [float(x) for b in batches for x in b.columns[name]]


def assert_means(got: list[float], exact: list[float]) -> None:
    """Each mean rounded to 6 places: exactly, except that at a tie (which float summation may
    land on either side of) it may be the neighbouring multiple of 1e-6."""
    assert len(got) == len(exact)
    for i, (g, x) in enumerate(zip(got, exact, strict=True)):
        if near_tie(x):
            assert abs(g - x) <= 0.5e-6 * (1 + 1e-9) and round6(g) == g, (i, g, x)
        else:
            assert g == round6(x), (i, g, x)


async def check(readings: list[Reading], cuts: Iterable[int], norm_w: int, avg_w: int) -> None:
    out = await run_both(batches_of(readings, cuts), norm_w, avg_w)
    rows = [(sid, int(q)) for b in out for sid, q in zip(b.sensor_ids(), b.seq, strict=True)]
    assert rows == [(r[0], r[1]) for r in readings]  # every reading, in order
    # Same min and max, same arithmetic: normalize matches bit for bit.
    assert column(out, "normalized") == normalize_ref(readings, norm_w)
    assert_means(column(out, "moving_avg"), moving_average_ref(readings, avg_w))


# Small integers give ties and constant runs; millis give everything else (no denormals: no
# sensor reads 1e-300).
values = st.one_of(
    st.integers(-3, 3).map(float), st.integers(-(10**7), 10**7).map(lambda i: i / 1000)
)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 5), values), max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    norm_window=st.integers(1, 12),
    avg_window=st.integers(1, 12),
)
async def test_interleaved_sensors_any_split(
    rows: list[tuple[int, float]], cuts: list[int], norm_window: int, avg_window: int
) -> None:
    await check(readings_of(rows, "W"), cuts, norm_window, avg_window)


async def test_one_reading_each_from_ten_thousand_sensors() -> None:
    values = np.random.default_rng(1).normal(50, 10, (4, 10_000)).tolist()
    # Round robin: a batch holds one reading from each of thousands of sensors.
    rows = [(i, values[seq][i]) for seq in range(4) for i in range(10_000)]
    await check(readings_of(rows, "M"), [7_000, 10_000, 10_001, 29_999], 3, 2)


async def test_thousands_of_readings_of_two_sensors() -> None:
    rng = np.random.default_rng(2)
    rows = list(
        zip(rng.integers(0, 2, 10_000).tolist(), rng.normal(5, 3, 10_000).tolist(), strict=True)
    )
    await check(readings_of(rows, "T"), [4_096, 8_192], norm_w=50, avg_w=10)


async def test_window_of_one_and_constant_values() -> None:
    readings = readings_of([(i % 3, 7.0 if i % 3 else float(i % 5)) for i in range(60)], "C")
    out = await run_both(batches_of(readings, [5, 17]), norm_window=1, avg_window=1)
    assert column(out, "normalized") == [0.0] * 60
    assert column(out, "moving_avg") == [r[2] for r in readings]  # small integers: exact
    out = await run_both(batches_of(readings_of([(0, 7.0)] * 30, "K"), [9]), 5, 4)
    assert column(out, "normalized") == [0.0] * 30
    assert column(out, "moving_avg") == [7.0] * 30


async def test_windows_continue_across_a_reload_with_the_same_size() -> None:
    readings = readings_of([(i % 2, float(i * i % 17)) for i in range(80)], "R")
    first, second = readings[:33], readings[33:]
    ctx = TestContext()
    out = await run_both(batches_of(first, [10]), 6, 4, ctx)
    out += await run_both(batches_of(second, [20]), 6, 4, ctx)  # rebuilt stages, same carry
    assert column(out, "normalized") == normalize_ref(readings, 6)
    assert_means(column(out, "moving_avg"), moving_average_ref(readings, 4))
    # A changed window starts afresh.
    out = await run_both(batches_of(second, [3]), 5, 3, ctx)
    assert column(out, "normalized") == normalize_ref(second, 5)
    assert_means(column(out, "moving_avg"), moving_average_ref(second, 3))


async def test_empty_batches_pass_only_with_derived_records() -> None:
    empty = Batch.of_sensor("E0", [], [], [])
    carrier = Batch.of_sensor("E0", [], [], [])
    carrier.derived.append({"kind": "features"})
    out = await run_both([empty, carrier], 5, 5)
    assert len(out) == 1
    assert out[0].derived == [{"kind": "features"}]
    assert out[0].columns["normalized"].shape == (0,)
    assert out[0].columns["moving_avg"].shape == (0,)
