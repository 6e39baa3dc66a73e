"""`fallback = "interpolate"` through the daemon: every seq arrives once, failed reads as
`quality = "interpolated"` between the good ones, and the file it wrote replays unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles

pytestmark = pytest.mark.e2e


def config(tmp: Path, name: str, source: dict[str, Any], out: Path) -> Path:
    return configs.write(
        tmp / f"{name}.toml",
        {
            "daemon": {
                "dead_letter": str(tmp / f"{name}-dead.jsonl"),
                "state_dir": str(tmp / f"{name}-state"),
            },
            "sources": [source],
            "stages": [],
            "sinks": [{"type": "jsonl", "path": str(out), "spool_dir": str(tmp / f"{name}-spool")}],
        },
    )


def run(cfg: Path, daemons: list[DaemonProcess]) -> dict[str, int]:
    d = DaemonProcess(cfg)
    daemons.append(d)
    assert d.finish(timeout=60) == 0, d.stderr
    counters = d.counters()
    assert reconciles(counters)
    return counters


def test_interpolated_readings_arrive_once_and_replay_as_written(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    simulated = {
        "type": "simulated",
        "sensors": 3,
        "rate_hz": 2000.0,
        "max_readings": 400,
        "fault_rate": 0.3,
        "fallback": "interpolate",
        "anomaly_rate": 0.0,
        "seed": 7,
        "id_prefix": "FBE",
    }
    out = tmp_path / "out.jsonl"
    counters = run(config(tmp_path, "sim", simulated, out), daemons)
    assert counters["read"] == counters["written"] == 1200
    rows = readings(read_rows(out))
    by_sensor: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_sensor.setdefault(r["sensor_id"], []).append(r)
    assert sorted(by_sensor) == ["FBE0000", "FBE0001", "FBE0002"]
    for sensor_rows in by_sensor.values():
        assert [r["seq"] for r in sensor_rows] == list(range(400))  # once each, in order
        quality = [r["quality"] for r in sensor_rows]
        for k, q in enumerate(quality):
            if q == "interpolated":  # on the line between the good reads around it
                before = next(r for r in reversed(sensor_rows[:k]) if r["quality"] == "ok")
                after = next(r for r in sensor_rows[k:] if r["quality"] == "ok")
                low, high = sorted((before["value"], after["value"]))
                assert low - 0.0005 <= sensor_rows[k]["value"] <= high + 0.0005
    qualities = {r["quality"] for r in rows}
    assert {"ok", "interpolated"} <= qualities <= {"ok", "stale", "interpolated"}

    again = tmp_path / "replayed.jsonl"
    counters = run(config(tmp_path, "replay", {"type": "file", "path": str(out)}, again), daemons)
    assert counters["rejected"] == 0 and counters["written"] == 1200
    fields = ("sensor_id", "seq", "ts", "value", "unit", "quality")
    replayed = readings(read_rows(again))
    assert [tuple(r[f] for f in fields) for r in replayed] == [
        tuple(r[f] for f in fields) for r in rows
    ]
