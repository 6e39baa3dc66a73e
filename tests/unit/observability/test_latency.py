"""End-to-end latency: the bucketed histogram's accuracy, its per-interval window, and the
path from a sink acknowledgement (fan-out) to the `pipeline_health` fields."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from daemon.batch import Batch
from daemon.config.loader import SinkResilience
from daemon.observability.health import HealthReporter
from daemon.observability.latency import (
    BUCKETS,
    EDGES_S,
    LatencyHistogram,
    LatencyWindow,
)
from daemon.resilience import GuardedSink
from daemon.runtime import ComponentContext, Lifetime, RunState
from daemon.sinks.blackhole import BlackholeSink
from daemon.topology.fanout import FanOut

NOW = 1.8e9
BUCKET_RATIO = 2 ** (1 / 8)  # one bucket's width: the resolution of every percentile


def aged(ages_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Timestamps of readings that are `ages_s` old at NOW."""
    return NOW - np.asarray(ages_s, dtype=np.float64)


def test_buckets_are_log_spaced_from_microseconds_to_hours() -> None:
    assert EDGES_S.shape == (BUCKETS + 1,)
    assert EDGES_S[0] == 0.0
    assert EDGES_S[1] == pytest.approx(2**-17 * 1.125)  # ~8.6 us
    assert EDGES_S[-2] == pytest.approx(2.0**13)  # the open-ended top bucket starts at ~2.3 h
    ratios = EDGES_S[2:] / EDGES_S[1:-1]
    assert ratios.min() > 1.05 and ratios.max() < 1.13  # 8 per octave, ~6-12 % wide


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_one_bucket_of_the_exact_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ages = rng.lognormal(mean=np.log(0.05), sigma=1.0, size=20_000)  # ~50 ms, long tail
    hist = LatencyHistogram()
    for chunk in np.array_split(ages, 17):  # many batches add up like one
        hist.record(aged(chunk), now=NOW)
    stats = hist.stats()
    assert stats.readings == ages.size
    assert stats.max_s == pytest.approx(ages.max(), rel=1e-6)  # exact (float rounding aside)
    for got, q in ((stats.p50_s, 50), (stats.p99_s, 99)):
        exact = float(np.percentile(ages, q))
        assert exact / BUCKET_RATIO <= got <= exact * BUCKET_RATIO, (q, got, exact)


def test_a_single_age_is_reported_within_its_bucket_and_exactly_as_max() -> None:
    hist = LatencyHistogram()
    hist.record(aged(np.full(100, 0.2)), now=NOW)
    stats = hist.stats()
    assert 0.2 / BUCKET_RATIO <= stats.p50_s <= 0.2
    assert stats.p99_s <= stats.max_s == pytest.approx(0.2, rel=1e-6)
    assert stats.as_ms()["readings"] == 100


def test_future_stamps_and_ancient_readings_land_in_the_end_buckets() -> None:
    hist = LatencyHistogram()
    hist.record(aged(np.array([-5.0, -1e-3, 0.0])), now=NOW)  # clock stepped: "negative" ages
    assert hist.counts[0] == 3
    assert hist.stats().p99_s < 1e-5
    hist.record(aged(np.array([1e6])), now=NOW)  # eleven days late
    assert hist.counts[-1] == 1
    assert hist.stats().max_s == pytest.approx(1e6)
    hist.record(np.empty(0), now=NOW)  # an empty batch changes nothing
    assert int(hist.counts.sum()) == 4


def test_the_window_reports_only_what_was_recorded_since_its_last_take() -> None:
    hist = LatencyHistogram()
    hist.record(aged(np.full(10, 2.0)), now=NOW)  # before the window existed: not its business
    window = LatencyWindow(hist)
    assert window.take().readings == 0
    hist.record(aged(np.full(1000, 0.010)), now=NOW)
    first = window.take()
    assert first.readings == 1000
    assert 0.010 / BUCKET_RATIO <= first.p99_s <= 0.010 * BUCKET_RATIO
    assert 0.010 <= first.max_s <= 0.010 * BUCKET_RATIO  # bucket resolution, not the run's 2 s
    assert window.take().readings == 0  # nothing new
    assert hist.stats().max_s == pytest.approx(2.0)  # the run keeps everything


async def test_fanout_records_ages_of_acknowledged_readings_into_pipeline_health(
    tmp_path: Path,
) -> None:
    state = RunState.fresh(str(tmp_path / "dead-letter.jsonl"))
    lifetime = Lifetime()
    ctx = ComponentContext("sinks[0]", "sink", state, lifetime)
    guarded = GuardedSink(
        BlackholeSink(BlackholeSink.Config(), ctx),
        SinkResilience(spool_dir=str(tmp_path / "spool")),
        state,
        lifetime,
    )
    reporter = HealthReporter(state)
    await guarded.open()
    try:
        fanout = FanOut([guarded], state)
        seq = np.arange(50)
        taken = time.time() - 0.3  # readings taken 300 ms before they reach the sink
        await fanout.deliver(Batch.of_sensor("LAT1", seq, np.full(50, taken), np.ones(50)))
    finally:
        await guarded.close()
    assert state.counters.written == 50
    snap = reporter.snapshot()
    for key in ("e2e_latency_ms", "e2e_latency_run_ms"):
        got = snap[key]
        assert got["readings"] == 50
        assert 300 / BUCKET_RATIO <= got["p99"] <= got["max"] < 300 + 1000  # 1 s: a slow box
    assert reporter.snapshot()["e2e_latency_ms"]["readings"] == 0  # the interval restarts
    assert reporter.snapshot()["e2e_latency_run_ms"]["readings"] == 50  # the run does not
