"""Numbers derived from what a daemon run showed: rates, CPU, RSS, per-stage counts.

Every rate here is a difference of the daemon's own cumulative counters between two of its
`pipeline_health` events, divided by the difference of their own timestamps, so the harness's
reaction time never enters a measurement. CPU is the tree's usage sampled at those same events.
"""

from __future__ import annotations

from typing import Any

from benchmarks.daemonrun import Observed, Sample, timestamp


def window(seen: Observed, after_s: float) -> list[Sample]:
    """The health samples taken at least `after_s` after READY=1 and before our SIGTERM."""
    ready = seen.ready_at or seen.started_at
    end = seen.stop_sent_at or float("inf")
    return [s for s in seen.samples if s.at - ready >= after_s and s.at <= end]


def rate(samples: list[Sample], counter: str = "read") -> float | None:
    """Counter growth per second between the first and last sample."""
    if len(samples) < 2:
        return None
    first, last = samples[0], samples[-1]
    grown = int(last.health["counters"][counter]) - int(first.health["counters"][counter])
    return round(grown / (last.at - first.at), 1)


def cpu_cores(samples: list[Sample]) -> float | None:
    """CPU seconds the daemon's process tree used per wall second between first and last."""
    usable = [s for s in samples if s.usage is not None]
    if len(usable) < 2:
        return None
    first, last = usable[0], usable[-1]
    assert first.usage is not None and last.usage is not None
    return round((last.usage.cpu_s - first.usage.cpu_s) / (last.at - first.at), 3)


def run_cpu_cores(seen: Observed) -> float | None:
    """CPU cores from READY=1 to shutdown_complete (the whole data phase)."""
    if seen.ready_usage is None or seen.end_usage is None or seen.ready_at is None:
        return None
    elapsed = timestamp(seen.event("shutdown_complete")) - seen.ready_at
    return round((seen.end_usage.cpu_s - seen.ready_usage.cpu_s) / elapsed, 3)


def rss_mb(sample: Sample) -> float:
    """The daemon process's own RSS as it reported it."""
    return float(sample.health["rss_mb"])


def growth_pct(before: float, after: float) -> float:
    return round((after - before) / before * 100.0, 1)


def stage_label(seen: Observed, name: str) -> str | None:
    """The label (`stages[3]`) of the first stage registered as `name`."""
    names = seen.event("daemon_started").get("stages", [])
    return f"stages[{names.index(name)}]" if name in names else None


def shutdown(seen: Observed) -> dict[str, Any]:
    """The counters at exit, whether they reconciled, and the peak RSS (VmHWM)."""
    end = seen.event("shutdown_complete")
    counters: dict[str, int] = end["counters"]
    return {
        "counters": counters,
        "reconciled": bool(end.get("reconciled")),
        "peak_rss_mb": end.get("peak_rss_mb"),
    }


def series(samples: list[Sample], points: int = 12) -> list[list[float]]:
    """[readings read, RSS MB] at up to `points` evenly spread samples (for RESULTS.md)."""
    if not samples:
        return []
    step = max(1, len(samples) // points)
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return [[s.health["counters"]["read"], rss_mb(s)] for s in picked]


def rate_series(seen: Observed) -> list[list[float]]:
    """`[seconds since READY=1, read/s, written/s, readings in flight]` between each two
    consecutive health events, the drain after our SIGTERM included: the sources' rate against
    the sink's over a run (for the backpressure chart)."""
    ready = seen.ready_at or seen.started_at
    out: list[list[float]] = []
    for a, b in zip(seen.samples, seen.samples[1:], strict=False):
        elapsed = b.at - a.at
        if elapsed <= 0:
            continue
        before, after = a.health["counters"], b.health["counters"]
        out.append(
            [
                round(b.at - ready, 2),
                round((after["read"] - before["read"]) / elapsed, 1),
                round((after["written"] - before["written"]) / elapsed, 1),
                after["in_flight"],
            ]
        )
    return out
