"""Scenarios 1 and 5: readings per second, the comparison pipelines, and the feature offload.

Throughput runs a fixed workload to completion, as the issue states it (1,000 sensors, no rate
limit, 1,000,000 readings), timed from READY=1 (the pipeline is open: sinks open, the feature
pool started and warmed) to the daemon's `shutdown_complete` (everything drained and closed).
The per-record chains (`baseline.py`) run on the same workload in the same invocation.

The offload scenario compares the features stage inline and with 1 and 2 pool workers on an
open-ended stream, stopped once enough readings went through and the daemon has reported the
features stage several times; its rate is the steady state between those reports, and the
features stage's own numbers (readings in, batches in, pool submissions) come from the last one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from benchmarks import baseline, measure, workloads
from benchmarks.daemonrun import Observed, Sample, run_daemon, timestamp
from benchmarks.workloads import Sizes


def fixed_workload(sizes: Sizes, workers: int | None) -> dict[str, Any]:
    """The default chain (plus features with `workers`, unless None) into jsonl, to the end."""
    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=sizes.health_s),
            workloads.simulated(sizes.sensors, max_readings=sizes.per_sensor),
            workloads.default_chain()
            + ([workloads.features(workers)] if workers is not None else []),
            workloads.jsonl(tmp),
        )
        seen = run_daemon(text, tmp)
        out_bytes = (tmp / "out.jsonl").stat().st_size
    end = measure.shutdown(seen)
    counters = end["counters"]
    assert seen.ready_at is not None, "no READY=1 from the daemon"
    seconds = timestamp(seen.event("shutdown_complete")) - seen.ready_at
    return {
        "readings": counters["read"],
        "written": counters["written"],
        "filtered": counters["filtered"],
        "features": counters["features"],
        "seconds": round(seconds, 3),
        "rate": round(counters["read"] / seconds),
        "startup_s": round(seen.ready_at - seen.started_at, 3),
        "cpu_cores": measure.run_cpu_cores(seen),
        "peak_rss_mb": end["peak_rss_mb"],
        "out_mb": round(out_bytes / 2**20, 1),
        "reconciled": end["reconciled"],
    }


def per_record_chain(sizes: Sizes, fast: bool) -> dict[str, Any]:
    """The plain generator chain, `json.dumps` (or orjson when `fast`), same workload."""
    dumps = orjson.dumps if fast else baseline.json_dumps
    with workloads.scratch() as d:
        result = baseline.run_chain(Path(d) / "out.jsonl", sizes.sensors, sizes.per_sensor, dumps)
    return {
        "readings": result["readings"],
        "written": result["written"],
        "seconds": round(result["seconds"], 3),
        "rate": round(result["rate"]),
    }


FEATURES_LABEL = "stages[3]"  # after the three stages of the default chain


def offload(sizes: Sizes, workers: int, encoder_child: bool = True) -> dict[str, Any]:
    """Default chain + features (`workers` = 0: inline), open-ended, into jsonl on /dev/null:
    the encoder still runs, but a long run's page-cache writeback (which throttles `write()`
    once gigabytes are dirty) does not blur a comparison that is about CPU.

    On two cores the second is either the encoder child's (`encoder_child`, the default) or
    free for the feature pool: both are measured, as that is where the pool pays off or not."""

    def features_in(sample: Sample) -> int:
        return int(sample.health["stages"].get(FEATURES_LABEL, {}).get("in", 0))

    def enough(seen: Observed) -> bool:
        reporting = [s for s in seen.samples if features_in(s) > 0]
        return (
            len(reporting) >= 3
            and reporting[-1].health["counters"]["read"] >= sizes.offload_readings
        )

    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=sizes.health_s / 2),
            workloads.simulated(sizes.sensors),
            [*workloads.default_chain(), workloads.features(workers)],
            workloads.jsonl(
                tmp,
                path="/dev/null",
                fsync="never",
                extra=None if encoder_child else {"encode_ahead": False},
            ),
        )
        seen = run_daemon(text, tmp, stop=enough)
    assert measure.stage_label(seen, "features") == FEATURES_LABEL
    steady = [s for s in measure.window(seen, 0.0) if features_in(s) > 0]
    last = steady[-1].health
    stage = last["stages"][FEATURES_LABEL]
    submissions = int(last["gauges"].get(FEATURES_LABEL, {}).get("submissions", 0))
    end = measure.shutdown(seen)
    tree_rss = [s.usage.rss_bytes for s in steady if s.usage is not None]
    return {
        "workers": workers,
        "encoder_child": encoder_child,
        "rate": measure.rate(steady),
        "cpu_cores": measure.cpu_cores(steady),
        "stage_readings": stage["in"],
        "stage_batches": stage["batches"],
        "submissions": submissions,
        "readings_per_batch": round(stage["in"] / max(1, stage["batches"]), 1),
        # Batches still in flight to the pool are submitted but not yet counted as batches.
        "submissions_per_batch": round(submissions / max(1, stage["batches"]), 3),
        "readings_per_submission": round(stage["in"] / submissions, 1) if submissions else None,
        "features": end["counters"]["features"],
        "peak_rss_mb": end["peak_rss_mb"],
        "tree_rss_mb": round(max(tree_rss) / 2**20, 1) if tree_rss else None,
        "reconciled": end["reconciled"],
    }
