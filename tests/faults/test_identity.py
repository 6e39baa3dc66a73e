"""Identity survives restarts: a file replay resumes where delivery ended (after SIGTERM: not
one line twice; after SIGKILL at random points: every line, twice only if it was in flight),
and a simulated sensor's `(sensor_id, seq)` never repeats across runs."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles, write_config

pytestmark = pytest.mark.e2e

LINES = 60_000
RATE = 30_000  # lines a second: a run takes ~2 s, so a signal lands mid-file


def replay_config(tmp: Path, data: Path) -> Path:
    doc = {
        "daemon": {
            "dead_letter": str(tmp / "dead-letter.jsonl"),
            "state_dir": str(tmp / "state"),
            "health_interval_s": 0.2,
            "shutdown_timeout_s": 10,
        },
        "sources": [{"type": "file", "path": str(data), "rate_hz": RATE}],
        "sinks": [
            {"type": "jsonl", "path": str(tmp / "out.jsonl"), "spool_dir": str(tmp / "spool")}
        ],
    }
    return configs.write(tmp / "replay.toml", doc)


def data_file(tmp: Path) -> Path:
    path = tmp / "in.csv"
    rows = (f"F{i % 50:03d},{i // 50},{1.7e9 + i / 1000:.3f},{20 + i % 60}" for i in range(LINES))
    path.write_text("sensor_id,seq,ts,value\n" + "\n".join(rows) + "\n")
    return path


def delivered(tmp: Path) -> Counter[tuple[str, int]]:
    return Counter((r["sensor_id"], r["seq"]) for r in readings(read_rows(tmp / "out.jsonl")))


def test_a_replay_stopped_by_sigterm_resumes_without_one_line_twice(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = replay_config(tmp_path, data_file(tmp_path))
    first = DaemonProcess(cfg)
    daemons.append(first)
    first.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    first.signal(signal.SIGTERM)
    assert first.finish(timeout=30) == 0
    read_first = first.counters()["read"]
    assert 0 < read_first < LINES, "the stop must land mid-file"
    second = DaemonProcess(cfg)
    daemons.append(second)
    assert second.finish(timeout=60) == 0  # the rest of the file, then the end of the stream
    assert any(e["event"] == "source_resumed" for e in second.events)
    assert second.counters()["read"] == LINES - read_first
    got = delivered(tmp_path)
    assert len(got) == LINES and max(got.values()) == 1


def test_sigkill_at_random_points_delivers_every_line_duplicating_only_what_was_in_flight(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = replay_config(tmp_path, data_file(tmp_path))
    rng = random.Random(20261204)
    kills = 0
    for _ in range(20):
        d = DaemonProcess(cfg)
        daemons.append(d)
        d.wait_event("daemon_started")
        time.sleep(rng.uniform(0.05, 0.6))  # a random point of the run: the fault itself
        if d.proc.poll() is not None:
            break
        d.kill()
        kills += 1
    last = DaemonProcess(cfg)
    daemons.append(last)
    assert last.finish(timeout=60) == 0
    assert reconciles(last.counters())
    got = delivered(tmp_path)
    assert len(got) == LINES, "a line was lost"
    duplicates = sum(n - 1 for n in got.values())
    # In flight at a kill: at most the queue and the sink's batch (~0.05 s of lines a batch
    # at this pace) plus what was delivered since the last state write (state.FLUSH_S).
    assert duplicates <= kills * RATE * 0.5, (duplicates, kills)
    assert kills >= 10


def test_simulated_sensors_never_repeat_a_seq_across_runs(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(tmp_path, sensors=20, rate_hz=5000, max_readings=300)
    for _ in range(2):
        d = DaemonProcess(cfg)
        daemons.append(d)
        assert d.finish(timeout=60) == 0
    rows = readings(read_rows(tmp_path / "out.jsonl"))
    keys = Counter((r["sensor_id"], r["seq"]) for r in rows)
    assert max(keys.values()) == 1
    per_sensor = Counter(sid for sid, _ in keys)
    assert all(max(seq for s, seq in keys if s == sid) >= 300 for sid in per_sensor)
