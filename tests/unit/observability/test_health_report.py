"""The pipeline_health fields, the STATUS= line and the health verdict, on an injected clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from daemon.observability.health import HealthReporter, StageStats
from daemon.observability.looplag import LoopLagMonitor
from daemon.runtime import RunState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakePipeline:
    """The two attributes the reporter reads from `daemon.topology.pipeline.Pipeline`."""

    stage_stats: dict[str, StageStats] = field(default_factory=dict)
    queue_depth: int = 0


@pytest.fixture
def state(tmp_path: Path) -> RunState:
    return RunState.fresh(str(tmp_path / "dead-letter.jsonl"))


def test_stage_stats_totals_and_latency_percentiles() -> None:
    stats = StageStats()
    for i in range(1, 101):
        stats.record(10, 9, i / 1000)  # 1..100 ms
    assert (stats.n_in, stats.n_out, stats.batches) == (1000, 900, 100)
    p50, p99 = stats.latency()
    assert p50 == pytest.approx(0.0505)
    assert p99 == pytest.approx(0.09901)
    assert StageStats().latency() == (0.0, 0.0)


def test_stage_latency_reflects_recent_batches_in_bounded_memory() -> None:
    stats = StageStats()
    for _ in range(3 * StageStats.RESERVOIR):
        stats.record(1, 1, 1.0)  # an old slow period
    for _ in range(StageStats.RESERVOIR):
        stats.record(1, 1, 0.002)
    p50, p99 = stats.latency()
    assert p50 == pytest.approx(0.002)
    assert p99 == pytest.approx(0.002)
    assert stats.batches == 4 * StageStats.RESERVOIR


def test_snapshot_carries_counters_rates_stages_queues_breakers_spool_lag_rss(
    state: RunState,
) -> None:
    clock = Clock()
    lag = LoopLagMonitor()
    lag.record(0.002)
    reporter = HealthReporter(state, lag, clock=clock)
    threshold = StageStats()
    pipeline = FakePipeline({"stages[0]": threshold}, queue_depth=7)
    reporter.attach(pipeline)
    c = state.counters
    state.gauges["sinks[0]"] = {"breaker": "open", "spool_pending": 40, "spool_bytes": 4096}
    state.gauges["sinks[1]"] = {"breaker": "closed", "spool_pending": 2, "spool_bytes": 100}
    state.gauges["stages[3]"] = {"queue_depth": 3, "workers": 2}

    c.read, c.written, c.filtered, c.spooled = 1000, 800, 100, 42
    threshold.record(1000, 900, 0.004)
    clock.now += 2.0
    snap = reporter.snapshot()

    assert snap["counters"]["read"] == 1000
    assert snap["counters"]["in_flight"] == 1000 - 800 - 100 - 42
    assert snap["read_per_s"] == 500.0
    assert snap["written_per_s"] == 400.0
    assert snap["interval_s"] == 2.0
    assert snap["stages"]["stages[0]"] == {
        "in": 1000,
        "out": 900,
        "batches": 1,
        "in_per_s": 500.0,
        "out_per_s": 450.0,
        "p50_ms": 4.0,
        "p99_ms": 4.0,
    }
    assert snap["queues"] == {"sources": 7, "stages[3]": 3}
    assert snap["breakers"] == {"sinks[0]": "open", "sinks[1]": "closed"}
    assert snap["spool"] == {"pending": 42, "bytes": 4196}
    assert snap["loop_lag_ms"] == {"p50": 2.0, "p99": 2.0, "max": 2.0}
    assert snap["rss_mb"] > 1
    orjson.dumps(snap)  # it goes into a log line as is

    # The next report's rates cover only what happened since this one.
    c.read, c.written = 1300, 1100
    threshold.record(300, 300, 0.004)
    clock.now += 1.0
    snap = reporter.snapshot()
    assert (snap["read_per_s"], snap["written_per_s"]) == (300.0, 300.0)
    assert snap["stages"]["stages[0]"]["out_per_s"] == 300.0


def test_a_rebuilt_pipeline_restarting_stage_totals_gives_no_negative_rate(
    state: RunState,
) -> None:
    clock = Clock()
    reporter = HealthReporter(state, clock=clock)
    old = StageStats()
    old.record(500, 500, 0.001)
    reporter.attach(FakePipeline({"stages[0]": old}))
    reporter.snapshot()
    new = StageStats()
    new.record(100, 100, 0.001)
    reporter.attach(FakePipeline({"stages[0]": new}))  # after a reload
    clock.now += 1.0
    assert reporter.snapshot()["stages"]["stages[0]"]["in_per_s"] == 100.0


def test_status_text_names_the_rate_and_each_sink(state: RunState) -> None:
    clock = Clock()
    reporter = HealthReporter(state, clock=clock)
    state.gauges["sinks[0]"] = {"breaker": "closed", "name": "jsonl-0"}
    state.gauges["sinks[1]"] = {"breaker": "half_open"}
    assert reporter.status_text() == "0 readings/s, sinks: jsonl-0 closed, sinks[1] half_open"
    state.counters.written = 12345
    clock.now += 1.0
    reporter.snapshot()
    assert reporter.status_text().startswith("12345 readings/s, ")
    state.gauges.clear()
    assert reporter.status_text() == "12345 readings/s"


def test_healthy_while_data_is_written(state: RunState) -> None:
    clock = Clock()
    reporter = HealthReporter(state, LoopLagMonitor(), clock=clock)
    limits = {"stale_after_s": 60.0, "breaker_open_max_s": 30.0, "loop_stall_s": 5.0}
    assert reporter.problems(**limits) == []  # just started
    for _ in range(5):
        clock.now += 50.0
        state.counters.written += 10
        assert reporter.problems(**limits) == []


def test_nothing_written_for_too_long_is_unhealthy(state: RunState) -> None:
    clock = Clock()
    reporter = HealthReporter(state, clock=clock)
    limits = {"stale_after_s": 60.0, "breaker_open_max_s": 30.0, "loop_stall_s": 5.0}
    clock.now += 61.0
    [reason] = reporter.problems(**limits)
    assert reason.startswith("nothing written for 61.0 s")
    state.counters.written = 1
    assert reporter.problems(**limits) == []


def test_a_breaker_open_too_long_is_unhealthy(state: RunState) -> None:
    clock = Clock()
    reporter = HealthReporter(state, clock=clock)
    limits = {"stale_after_s": 1e9, "breaker_open_max_s": 30.0, "loop_stall_s": 5.0}
    # No open_since gauge: the reporter times it from when it first saw the breaker open.
    state.gauges["sinks[0]"] = {"breaker": "open"}
    assert reporter.problems(**limits) == []
    clock.now += 20.0
    state.gauges["sinks[0]"]["breaker"] = "half_open"  # still not closed: the clock runs on
    assert reporter.problems(**limits) == []
    clock.now += 11.0
    [reason] = reporter.problems(**limits)
    assert reason.startswith("sinks[0] breaker not closed for 31.0 s")
    state.gauges["sinks[0]"]["breaker"] = "closed"
    assert reporter.problems(**limits) == []
    # With the sink's own open_since, that time counts even if nobody was looking.
    state.gauges["sinks[1]"] = {"breaker": "open", "open_since": clock.now - 45.0}
    [reason] = reporter.problems(**limits)
    assert reason.startswith("sinks[1] breaker not closed for 45.0 s")


def test_a_stalled_loop_is_unhealthy(state: RunState) -> None:
    lag = LoopLagMonitor()
    reporter = HealthReporter(state, lag)
    lag.record(6.0)
    assert reporter.problems(stale_after_s=1e9, breaker_open_max_s=1e9, loop_stall_s=5.0) == [
        "event loop stalled (lag >= 5 s)"
    ]
