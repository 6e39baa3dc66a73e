"""The workloads of issue 4 as daemon configs, full size and `--quick` size.

Every config is the daemon's documented TOML, generated here (as dicts, rendered by
`benchmarks.configs`, whose default chain is the embedded default config's) so a run is
reproducible from the JSON it prints (`sizes` is echoed with each run). Defaults of the daemon
are kept unless the scenario is about them; what a scenario sets, it sets here, in one place.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import configs
from benchmarks.configs import Table


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is. FULL is the issue's; QUICK keeps the harness tested."""

    sensors: int  # throughput and offload: simulated sensors, unlimited rate
    per_sensor: int  # throughput: readings per sensor (a fixed workload, run to completion)
    health_s: float  # pipeline_health interval of the sampled runs
    long_readings: int  # memory: readings in the long run
    conc_sensors: int  # concurrency: sensors at conc_rate_hz for conc_s
    conc_rate_hz: float
    conc_s: float
    bp_sensors: int  # backpressure: sensors at bp_rate_hz into a sink paced to bp_max_per_s
    bp_rate_hz: float
    bp_max_per_s: float
    bp_s: float  # at least this long, and until the buffers are full and steady for
    bp_steady_s: float  # ... this long, but no longer than
    bp_max_s: float
    bp_small_queues: bool  # quick: small buffers so the source is slowed within the short run
    offload_readings: int  # feature offload: readings per run (at least)


FULL = Sizes(
    sensors=1000,
    per_sensor=1000,
    health_s=1.0,
    long_readings=50_000_000,
    conc_sensors=10_000,
    conc_rate_hz=10.0,
    conc_s=60.0,
    bp_sensors=1000,
    bp_rate_hz=100.0,
    bp_max_per_s=10_000.0,
    bp_s=30.0,
    bp_steady_s=20.0,
    bp_max_s=300.0,
    bp_small_queues=False,
    offload_readings=3_000_000,
)

QUICK = Sizes(
    sensors=50,
    per_sensor=300,
    health_s=0.1,
    long_readings=200_000,
    conc_sensors=1000,
    conc_rate_hz=10.0,
    conc_s=1.0,
    bp_sensors=200,
    bp_rate_hz=100.0,
    bp_max_per_s=2000.0,
    bp_s=1.5,
    bp_steady_s=0.5,
    bp_max_s=10.0,
    bp_small_queues=True,
    offload_readings=40_000,
)


def config(daemon: Table, source: Table, stages: list[Table], sink: Table) -> str:
    """One daemon config as TOML: the sections below, rendered by `benchmarks.configs`."""
    return configs.render(
        {"daemon": daemon, "sources": [source], "stages": stages, "sinks": [sink]}
    )


def default_chain() -> list[Table]:
    """threshold_filter, normalize, moving_average: the embedded default config's stages."""
    return configs.default_chain()


def daemon_section(
    tmp: Path, *, health_s: float, shutdown_timeout_s: float = 20.0, queue_batches: int = 0
) -> Table:
    section: Table = {
        "log_level": "info",
        "health_interval_s": health_s,
        "shutdown_timeout_s": shutdown_timeout_s,
        "dead_letter": str(tmp / "dead-letter.jsonl"),
        "state_dir": str(tmp / "state"),
    }
    if queue_batches:
        section["queue_batches"] = queue_batches
    return section


def simulated(
    sensors: int,
    *,
    rate_hz: float = 1e9,
    max_readings: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Table:
    """`rate_hz = 1e9`: no rate limit, the pipeline's backpressure sets the pace."""
    return {
        "type": "simulated",
        "sensors": sensors,
        "rate_hz": rate_hz,
        "max_readings": max_readings,
        "anomaly_rate": 0.05,
        "seed": 7,
        **(extra or {}),
    }


def jsonl(
    tmp: Path, path: str = "", fsync: str = "interval", extra: Mapping[str, Any] | None = None
) -> Table:
    """Into `tmp/out.jsonl`, or into `path` (e.g. /dev/null), which is then never rotated:
    rotating renames the file, and a device must never be renamed (the sink also refuses to
    rotate anything but a regular file; this does not rely on it)."""
    sink: Table = {
        "type": "jsonl",
        "path": path or str(tmp / "out.jsonl"),
        "fsync": fsync,
        "spool_dir": str(tmp / "spool"),
    }
    if path:
        sink["rotate_bytes"] = 0
    return sink | dict(extra or {})


def blackhole(tmp: Path, max_per_s: float) -> Table:
    return {"type": "blackhole", "max_per_s": max_per_s, "spool_dir": str(tmp / "spool")}


def features(workers: int) -> Table:
    """The default config's features stage (window 256) with `workers` pool processes."""
    return configs.features(workers=workers)


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A run's own directory (config, output, spool, dead letters), removed afterwards."""
    return tempfile.TemporaryDirectory(prefix="ingestd-bench-")
