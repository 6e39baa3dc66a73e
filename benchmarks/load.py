"""Scenarios 2 to 4: memory over a long stream, many paced sensors, a sink slower than sources.

All three run an open-ended stream and end it with SIGTERM once the run has lasted (or read)
enough, as seen in the daemon's own `pipeline_health` events; what they report comes from those
events, from /proc samples taken as each arrives, and from `shutdown_complete`. The first part
of each run is warm-up (imports, task start-up, queues filling) and is left out where a steady
state is meant; both ends of every window are printed with the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import measure, workloads
from benchmarks.daemonrun import Observed, Sample, run_daemon, timestamp
from benchmarks.workloads import Sizes
from daemon.sources.simulated.source import SimulatedSource

WARMUP_FRACTION = 0.1  # of the readings (memory) or the duration (the paced runs)
CHECK_SLOWED = 0.5  # backpressure: the source must read at most this share of its nominal rate
CHECK_PACED = 1.2  # ... and the sink acknowledge at most this multiple of its max_per_s
RSS_LIMIT_MB = 150.0


def _read(seen: Observed) -> int:
    return int(seen.samples[-1].health["counters"]["read"]) if seen.samples else 0


def memory_long(sizes: Sizes, readings: int) -> dict[str, Any]:
    """The default chain flat out until `readings` were read; RSS from every health event.
    The sink is jsonl into /dev/null: the whole encode-and-write path, without filling a disk
    with ~10 GB (the page cache is not the daemon's RSS anyway)."""

    def enough(seen: Observed) -> bool:
        return len(seen.samples) >= 3 and _read(seen) >= readings

    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=sizes.health_s),
            workloads.simulated(sizes.sensors),
            workloads.default_chain(),
            workloads.jsonl(tmp, path="/dev/null", fsync="never"),
        )
        seen = run_daemon(text, tmp, stop=enough, timeout_s=3600.0)
    samples = measure.window(seen, 0.0)
    warm = next(
        (s for s in samples if s.health["counters"]["read"] >= WARMUP_FRACTION * readings),
        samples[0],
    )
    last = samples[-1]
    end = measure.shutdown(seen)
    return {
        "readings": end["counters"]["read"],
        "seconds": round(last.at - (seen.ready_at or seen.started_at), 1),
        "rate": measure.rate(samples),
        # Does the pipeline slow down as the stream gets long? First and last quarter.
        "rate_first_quarter": measure.rate(samples[: max(2, len(samples) // 4)]),
        "rate_last_quarter": measure.rate(samples[-max(2, len(samples) // 4) :]),
        "rss_warm_mb": measure.rss_mb(warm),
        "rss_warm_at_readings": warm.health["counters"]["read"],
        "rss_end_mb": measure.rss_mb(last),
        "rss_growth_pct": measure.growth_pct(measure.rss_mb(warm), measure.rss_mb(last)),
        "rss_max_sampled_mb": max(measure.rss_mb(s) for s in samples),
        "peak_rss_mb": end["peak_rss_mb"],
        "samples": len(samples),
        "rss_series": measure.series(samples),
        "reconciled": end["reconciled"],
    }


def concurrency(sizes: Sizes, seconds: float, wakeups_hz: float = 0.0) -> dict[str, Any]:
    """`conc_sensors` sensors at `conc_rate_hz` each for `seconds`, default chain into jsonl.
    `wakeups_hz` overrides the simulated source's `max_wakeups_hz` (its tick coalescing, which
    trades CPU for how old a reading is when its sensor task wakes up to emit it)."""
    extra = {"max_wakeups_hz": wakeups_hz} if wakeups_hz else None
    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            workloads.daemon_section(tmp, health_s=sizes.health_s * 2.5),
            workloads.simulated(sizes.conc_sensors, rate_hz=sizes.conc_rate_hz, extra=extra),
            workloads.default_chain(),
            workloads.jsonl(tmp),
        )
        seen = run_daemon(text, tmp, stop=lambda s: s.since_ready_s >= seconds)
    steady = measure.window(seen, WARMUP_FRACTION * seconds)
    last = measure.window(seen, 0.0)[-1].health
    intervals = [s.health["e2e_latency_ms"]["p99"] for s in steady]
    end = measure.shutdown(seen)
    return {
        "sensors": sizes.conc_sensors,
        "max_wakeups_hz": wakeups_hz or None,
        "nominal_per_s": round(sizes.conc_sensors * sizes.conc_rate_hz),
        "seconds": round(_ran_s(seen), 1),
        "read_per_s": measure.rate(steady),
        "written_per_s": measure.rate(steady, "written"),
        "loop_lag_p50_ms": last["loop_lag_ms"]["p50"],
        "loop_lag_p99_ms": last["loop_lag_ms"]["p99"],
        "loop_lag_max_ms": last["loop_lag_ms"]["max"],
        "e2e_p50_ms": last["e2e_latency_run_ms"]["p50"],
        "e2e_p99_ms": last["e2e_latency_run_ms"]["p99"],
        "e2e_max_ms": last["e2e_latency_run_ms"]["max"],
        "e2e_p99_worst_interval_ms": max(intervals, default=None),
        "cpu_cores": measure.cpu_cores(steady),
        "peak_rss_mb": end["peak_rss_mb"],
        "reconciled": end["reconciled"],
        # the whole run's latency distribution (for the CDF chart: `benchmarks.plots`)
        "e2e_cdf_ms": seen.event("shutdown_complete").get("e2e_latency_cdf_ms"),
    }


def _ran_s(seen: Observed) -> float:
    """READY=1 to our SIGTERM."""
    return (seen.stop_sent_at or seen.exited_at) - (seen.ready_at or seen.started_at)


def _whole_run_rate(seen: Observed, counter: str) -> float | None:
    """`counter` at the last health event before SIGTERM over the time since READY=1."""
    samples = measure.window(seen, 0.0)
    if not samples:
        return None
    last = samples[-1]
    return round(int(last.health["counters"][counter]) / (last.at - (seen.ready_at or 0.0)), 1)


def _settled(seen: Observed, window_s: float, batch: int) -> list[Sample] | None:
    """The samples of the last `window_s` if the readings in flight (buffered between sources
    and sink) grew by at most two batches over them: the bounded queues are full, so from here
    the sources can only read as fast as the sink acknowledges. None while still filling."""
    samples = measure.window(seen, 0.0)
    if not samples or samples[0].at > samples[-1].at - window_s:
        return None
    start = max(i for i, s in enumerate(samples) if s.at <= samples[-1].at - window_s)
    recent = samples[start:]
    grown = recent[-1].health["counters"]["in_flight"] - recent[0].health["counters"]["in_flight"]
    return recent if grown <= 2 * batch else None


def backpressure(sizes: Sizes, seconds: float) -> dict[str, Any]:
    """Sources at `bp_sensors * bp_rate_hz` into a blackhole paced to a tenth of that, for at
    least `seconds` and until the buffers are full and steady (at most `bp_max_s`).

    The queue between sources and stages holds a number of batches; batches formed while the
    source runs freely are small, and each is replaced by a full one as the sink drains them,
    so the readings in flight keep growing for a while after the queue is "full". The steady
    state is measured once that has stopped."""
    small = sizes.bp_small_queues
    batch = 256 if small else SimulatedSource.Config().max_batch
    extra = {"max_batch": batch, "queue_batches": 1} if small else None

    def enough(seen: Observed) -> bool:
        ran = seen.since_ready_s
        steady = _settled(seen, sizes.bp_steady_s, batch)
        return ran >= sizes.bp_max_s or (ran >= seconds and steady is not None)

    with workloads.scratch() as d:
        tmp = Path(d)
        text = workloads.config(
            # The drain after SIGTERM empties the queues at the sink's pace: give it time.
            workloads.daemon_section(
                tmp,
                health_s=sizes.health_s * 2.5,
                shutdown_timeout_s=600.0,
                queue_batches=4 if small else 0,
            ),
            workloads.simulated(sizes.bp_sensors, rate_hz=sizes.bp_rate_hz, extra=extra),
            workloads.default_chain(),
            workloads.blackhole(tmp, sizes.bp_max_per_s),
        )
        seen = run_daemon(text, tmp, stop=enough, timeout_s=sizes.bp_max_s + 900.0)
    nominal = sizes.bp_sensors * sizes.bp_rate_hz
    ran = _ran_s(seen)
    settled = _settled(seen, sizes.bp_steady_s, batch)
    steady = settled or measure.window(seen, ran / 2)
    warm = measure.window(seen, WARMUP_FRACTION * ran)
    end = measure.shutdown(seen)
    counters = end["counters"]
    read_rate = measure.rate(steady)
    written_rate = measure.rate(steady, "written")
    result: dict[str, Any] = {
        "nominal_per_s": round(nominal),
        "sink_max_per_s": sizes.bp_max_per_s,
        "seconds": round(ran, 1),
        "steady": settled is not None,  # False: stopped at bp_max_s, rates from the 2nd half
        "steady_window_s": round(steady[-1].at - steady[0].at, 1) if steady else None,
        "read_per_s": read_rate,
        "written_per_s": written_rate,
        "in_flight_steady": steady[-1].health["counters"]["in_flight"] if steady else None,
        "read_per_s_whole_run": _whole_run_rate(seen, "read"),
        "written_per_s_whole_run": _whole_run_rate(seen, "written"),
        "rss_warm_mb": measure.rss_mb(warm[0]) if warm else None,
        "rss_end_mb": measure.rss_mb(warm[-1]) if warm else None,
        "peak_rss_mb": end["peak_rss_mb"],
        "drain_s": round(timestamp(seen.event("shutdown_complete")) - (seen.stop_sent_at or 0), 1),
        "counters": counters,
        "lost": counters["in_flight"],  # read but neither written, filtered, rejected nor spooled
        "reconciled": end["reconciled"],
        # source against sink rate over the run (for the chart: `benchmarks.plots`)
        "rate_series": measure.rate_series(seen),
        "stop_at_s": round(ran, 2),
    }
    result["checks"] = {
        "source_slowed": read_rate is not None and read_rate <= CHECK_SLOWED * nominal,
        # From READY on, the token bucket allows burst + rate * t: over the whole run that is
        # a bound no batch-sized step of the counter can cross (a short window could).
        "sink_paced": (result["written_per_s_whole_run"] or 0.0)
        <= CHECK_PACED * sizes.bp_max_per_s,
        "nothing_lost": end["reconciled"] and counters["spooled"] == counters["rejected"] == 0,
        "memory_bounded": (end["peak_rss_mb"] or 0) <= RSS_LIMIT_MB,
    }
    return result
