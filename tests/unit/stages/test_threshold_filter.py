"""threshold_filter: keeps min <= value <= max in order, counts the rest as filtered."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.config.fields import ConfigIssue, build
from daemon.stages.threshold import ThresholdFilter
from tests.support import TestContext, levers


async def feed(batches: list[Batch]) -> AsyncIterator[Batch]:
    for batch in batches:
        yield batch


async def collect(stream: AsyncIterator[Batch]) -> list[Batch]:
    return [batch async for batch in stream]


def stage(lo: float = 10.0, hi: float = 100.0) -> ThresholdFilter:
    return ThresholdFilter(ThresholdFilter.Config(min=lo, max=hi), TestContext())


async def test_keeps_bounds_inclusive_and_counts_the_rest() -> None:
    f = stage()
    batch = Batch.of_sensor(
        "TF1",
        seq=range(6),
        ts=range(6),
        value=[9.999, 10.0, 55.0, float("nan"), 100.0, 100.001],
        columns={"extra": [0, 1, 2, 3, 4, 5]},
    )
    batch.derived.append({"kind": "alert"})
    (out,) = await collect(f.process(feed([batch])))
    assert out.value.tolist() == [10.0, 55.0, 100.0]
    assert out.seq.tolist() == [1, 2, 4]
    assert out.columns["extra"].tolist() == [1.0, 2.0, 4.0]
    assert out.derived == [{"kind": "alert"}]
    assert levers(f).counters.filtered == 3


async def test_a_batch_with_nothing_left_is_dropped_unless_it_carries_derived_records() -> None:
    f = stage()
    empty = Batch.of_sensor("TF2", seq=[0, 1], ts=[0, 1], value=[1.0, 500.0])
    carrier = Batch.of_sensor("TF2", seq=[2], ts=[2], value=[0.0])
    carrier.derived.append({"kind": "features"})
    kept = Batch.of_sensor("TF2", seq=[3], ts=[3], value=[50.0])
    out = await collect(f.process(feed([empty, carrier, kept])))
    assert [len(b) for b in out] == [0, 1]
    assert out[0].derived == [{"kind": "features"}]
    assert out[1] is kept  # nothing dropped: passed on untouched
    assert levers(f).counters.filtered == 3


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=5),
)
async def test_matches_a_per_record_filter(values: list[float], cuts: list[int]) -> None:
    f = stage(-100.0, 250.0)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(values)}), len(values)]
    batches = [
        Batch.of_sensor("TF3", seq=range(lo, hi), ts=range(lo, hi), value=values[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]
    out = await collect(f.process(feed(batches)))
    assert np.concatenate([b.value for b in out] or [np.empty(0)]).tolist() == [
        v for v in values if -100.0 <= v <= 250.0
    ]
    assert all(len(b) for b in out)
    assert levers(f).counters.filtered == sum(1 for v in values if not -100.0 <= v <= 250.0)


def test_config_rejects_min_not_below_max_naming_min() -> None:
    issues: list[ConfigIssue] = []
    got = build(ThresholdFilter.Config, {"min": 500.0, "max": 100.0}, "stages[0]", issues)
    assert got is None
    assert [str(i) for i in issues] == ["stages[0].min: must be < max (100.0), got 500.0"]
    issues.clear()
    assert build(ThresholdFilter.Config, {"min": 5, "max": 5}, "s", issues) is None
    assert issues[0].path == "s.min"


def test_config_rejects_nan_and_accepts_open_bounds() -> None:
    issues: list[ConfigIssue] = []
    assert build(ThresholdFilter.Config, {"min": math.nan, "max": 1.0}, "s", issues) is None
    assert issues[0].path == "s.min"
    issues.clear()
    got = build(ThresholdFilter.Config, {"min": -math.inf, "max": 1.0}, "s", issues)
    assert got is not None and not issues
