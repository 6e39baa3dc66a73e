"""A pipeline with two sinks of different `kinds`: each file holds exactly its kinds.

A real file source through the features and threshold_alert stages into two jsonl sinks (both
fed by the encoder child): one takes readings only, so every batch's features and alerts are
cut off its encoded bytes; the other takes alerts only, so it is called only for batches that
carry an alert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.config import parse_config
from daemon.runtime import RunState
from daemon.topology.pipeline import Pipeline

READINGS = 200  # per sensor


def k1_value(seq: int) -> float:
    """Fires at seq 60 (above 90), resolves at seq 120 (down to 85 or less)."""
    return 50.0 if seq < 60 else 95.0 if seq < 120 else 80.0


def write_csv(path: Path) -> None:
    lines = ["sensor_id,seq,ts,value,unit"]
    for seq in range(READINGS):
        ts = f"2026-11-21T22:{seq // 60:02d}:{seq % 60:02d}.000000Z"
        lines.append(f"K1,{seq},{ts},{k1_value(seq)},celsius")
        lines.append(f"K2,{seq},{ts},40.0,celsius")
    path.write_text("\n".join(lines) + "\n")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


async def test_readings_go_to_one_sink_and_alerts_to_the_other(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv")
    config = parse_config(f"""
[daemon]
dead_letter = "{tmp_path / "dead-letter.jsonl"}"
state_dir = "{tmp_path / "state"}"

[[sources]]
type = "file"
path = "{tmp_path / "in.csv"}"
max_batch = 64

[[stages]]
type = "features"
window = 50
workers = 0

[[stages]]
type = "threshold_alert"
on = "value"
above = 90.0
clear_at = 85.0
rule = "hot"

[[sinks]]
type = "jsonl"
path = "{tmp_path / "readings.jsonl"}"
spool_dir = "{tmp_path / "spool-0"}"
kinds = ["reading"]

[[sinks]]
type = "jsonl"
path = "{tmp_path / "alerts.jsonl"}"
spool_dir = "{tmp_path / "spool-1"}"
kinds = ["alert"]
""")
    state = RunState.fresh(config.daemon.dead_letter, config.daemon.state_dir)
    await Pipeline(config, state).run()

    readings = lines(tmp_path / "readings.jsonl")
    assert {r["kind"] for r in readings} == {"reading"}
    assert [(r["sensor_id"], r["seq"]) for r in readings] == [
        (sensor, seq) for seq in range(READINGS) for sensor in ("K1", "K2")
    ]
    assert [r["value"] for r in readings if r["sensor_id"] == "K1"] == [
        k1_value(seq) for seq in range(READINGS)
    ]
    alerts = lines(tmp_path / "alerts.jsonl")
    assert [(a["kind"], a["sensor_id"], a["state"], a["rule"]) for a in alerts] == [
        ("alert", "K1", "firing", "hot"),
        ("alert", "K1", "resolved", "hot"),
    ]
    c = state.counters
    assert c.features == 8  # emitted, and taken by neither sink: no line anywhere
    assert (c.read, c.written, c.spooled, c.rejected) == (2 * READINGS, 2 * READINGS, 0, 0)
    assert c.reconciles()
