"""The benchmark harness keeps working: `--quick` runs every scenario on a tiny workload.

No timing is asserted here (the numbers live in benchmarks/RESULTS.md): only that every scenario
ran against the real daemon, reported what it must, and that what holds at any speed held —
counters reconcile, the throttled sink slowed the source without losing a reading, feature
submissions are per batch. The harness itself exits 1 when a correctness check fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "default_chain",
    "with_features",
    "baseline_json",
    "baseline_orjson",
    "memory_long",
    "concurrency",
    "concurrency_every_tick",
    "concurrency_coalesced",
    "backpressure",
    "features_inline",
    "features_1_worker",
    "features_2_workers",
    "features_inline_no_encoder_child",
    "features_1_worker_no_encoder_child",
}


@pytest.fixture(scope="module")
def quick() -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "median" in proc.stderr  # the summary table
    return [json.loads(line) for line in proc.stdout.splitlines()]


def runs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["scenario"]: o for o in objects if "scenario" in o and "run" in o}


@pytest.mark.e2e
def test_one_json_object_per_scenario_run_then_summaries_and_ratios(
    quick: list[dict[str, Any]],
) -> None:
    assert quick[0]["machine"]["cores"] >= 1 and quick[0]["quick"] is True
    assert set(runs(quick)) == SCENARIOS
    summarized = {o["summary"]["scenario"] for o in quick if "summary" in o}
    assert summarized == SCENARIOS
    ratios = {o["ratio"]: o for o in quick if "ratio" in o}
    assert {"default_chain/baseline_json", "default_chain/baseline_orjson"} <= set(ratios)
    assert ratios["default_chain/baseline_json"]["target"] == ">= 5"
    assert "load_at_end" in quick[-1]


@pytest.mark.e2e
def test_throughput_runs_the_whole_workload_through_the_real_daemon(
    quick: list[dict[str, Any]],
) -> None:
    got = runs(quick)
    for name in ("default_chain", "with_features"):
        run = got[name]
        assert run["readings"] == 50 * 300
        assert run["written"] + run["filtered"] == run["readings"]
        assert run["reconciled"] is True
        assert run["peak_rss_mb"] > 0 and run["rate"] > 0
    assert got["with_features"]["features"] > 0
    assert got["default_chain"]["features"] == 0
    for name in ("baseline_json", "baseline_orjson"):
        assert got[name]["readings"] == 50 * 300


@pytest.mark.e2e
def test_memory_and_concurrency_report_rss_over_time_lag_latency_and_cpu(
    quick: list[dict[str, Any]],
) -> None:
    got = runs(quick)
    memory = got["memory_long"]
    assert memory["readings"] >= 200_000
    assert memory["samples"] >= 3 and len(memory["rss_series"]) >= 2
    assert 0 < memory["rss_warm_mb"] <= memory["peak_rss_mb"]
    conc = got["concurrency"]
    assert conc["sensors"] == 1000 and conc["reconciled"] is True
    assert conc["e2e_p50_ms"] <= conc["e2e_p99_ms"] <= conc["e2e_max_ms"]
    assert conc["e2e_p50_ms"] > 0  # readings are stamped before they are acknowledged
    assert conc["loop_lag_p99_ms"] is not None and conc["cpu_cores"] > 0


@pytest.mark.e2e
def test_backpressure_slows_the_source_and_loses_nothing(quick: list[dict[str, Any]]) -> None:
    bp = runs(quick)["backpressure"]
    assert all(bp["checks"].values()), bp["checks"]
    assert bp["steady"] is True  # the buffers filled and stayed full: reading at the sink's pace
    counters = bp["counters"]
    assert counters["spooled"] == 0 and counters["rejected"] == 0 and bp["lost"] == 0
    assert counters["read"] == counters["written"] + counters["filtered"]


@pytest.mark.e2e
def test_feature_offload_submits_per_batch_not_per_reading(quick: list[dict[str, Any]]) -> None:
    got = runs(quick)
    assert got["features_inline"]["submissions"] == 0  # inline: the pool is never used
    for name, workers in (("features_1_worker", 1), ("features_2_workers", 2)):
        run = got[name]
        assert run["workers"] == workers
        assert 0 < run["submissions"] <= run["stage_batches"] + 8  # max_pending in flight
        assert run["readings_per_submission"] > 100  # thousands of readings per submission
        assert run["features"] > 0 and run["reconciled"] is True
