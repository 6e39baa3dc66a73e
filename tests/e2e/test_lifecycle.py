"""The daemon as a process: a bounded run, SIGTERM mid-stream, a failing sink and its spool,
and a feature worker killed mid-run."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import (
    DaemonProcess,
    descendants,
    read_rows,
    readings,
    reconciles,
    write_config,
)

pytestmark = pytest.mark.e2e


def test_bounded_run_exits_by_itself_and_reconciles(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(
        tmp_path,
        sensors=20,
        rate_hz=2000,
        max_readings=300,
        fault_rate=0.05,
        features=configs.features(window=32, workers=1),
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    assert d.finish(timeout=60) == 0, d.stderr
    c = d.counters()
    rows = read_rows(tmp_path / "out.jsonl")
    rd = readings(rows)
    keys = Counter((r["sensor_id"], r["seq"]) for r in rd)
    assert max(keys.values()) == 1, "a (sensor_id, seq) was written twice"
    assert c["read"] == 20 * 300
    assert c["written"] == len(rd)
    assert c["filtered"] > 0, "anomalies outside 10..100 should be filtered"
    assert all(10.0 <= r["value"] <= 100.0 for r in rd)
    assert reconciles(c), c
    assert any(r["quality"] == "stale" for r in rd)
    feats = [r for r in rows if r.get("kind") == "features"]
    per_sensor = Counter(r["sensor_id"] for r in rd)
    assert len(feats) == sum(n // 32 for n in per_sensor.values())
    assert c["features"] == len(feats)


def test_sigterm_mid_run_drains_and_loses_nothing(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(tmp_path, sensors=100, rate_hz=200, max_readings=0)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    d.signal(signal.SIGTERM)
    started = time.monotonic()
    assert d.finish(timeout=25) == 0, d.stderr
    assert time.monotonic() - started < 20.0
    c = d.counters()
    rd = readings(read_rows(tmp_path / "out.jsonl"))
    assert c["read"] > 0
    assert c["written"] == len(rd)
    assert c["spooled"] == 0, "an orderly drain to a healthy sink spools nothing"
    assert reconciles(c), c
    assert len({(r["sensor_id"], r["seq"]) for r in rd}) == len(rd)
    # every sensor's readings are a gapless prefix once the filtered ones are added back
    assert {e["event"] for e in d.events} >= {"daemon_started", "shutdown_started"}


def test_failing_sink_spools_everything_then_a_second_run_delivers_it_once(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the sink wants a directory\n")
    spool = tmp_path / "spool"
    cfg1 = write_config(
        tmp_path,
        sensors=5,
        rate_hz=1000,
        max_readings=200,
        sink_path=blocker / "out.jsonl",
        spool_dir=spool,
    )
    first = DaemonProcess(cfg1)
    daemons.append(first)
    assert first.finish(timeout=60) == 0, first.stderr
    c1 = first.counters()
    assert c1["written"] == 0
    assert c1["spooled"] > 0
    assert c1["spooled"] == c1["read"] - c1["filtered"] - c1["rejected"]
    opened = [e for e in first.events if e.get("event") == "breaker_state_changed"]
    assert any(e["to"] == "open" for e in opened)

    good = tmp_path / "good"
    good.mkdir()
    cfg2 = write_config(
        good,
        sensors=2,
        rate_hz=1000,
        max_readings=50,
        sink_path=good / "out.jsonl",
        spool_dir=spool,
        id_prefix="T",
    )
    second = DaemonProcess(cfg2)
    daemons.append(second)
    assert second.finish(timeout=60) == 0, second.stderr
    c2 = second.counters()
    assert c2["replayed"] == c1["spooled"]
    rd = readings(read_rows(good / "out.jsonl"))
    from_spool = [r for r in rd if r["sensor_id"].startswith("S")]
    assert len(from_spool) == c1["spooled"]
    assert len({(r["sensor_id"], r["seq"]) for r in from_spool}) == len(from_spool)
    assert c2["written"] == len(rd)
    assert reconciles(c2), c2
    assert any(e.get("event") == "spool_replayed" for e in second.events)


def test_killed_feature_worker_is_replaced_and_no_feature_is_lost(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(
        tmp_path,
        sensors=10,
        rate_hz=400,
        max_readings=2000,
        features=configs.features(window=50, workers=1),
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["features"] > 0)
    workers = _pool_workers(d.proc.pid)
    assert workers, "no feature worker process found"
    os.kill(workers[0], signal.SIGKILL)
    assert d.finish(timeout=60) == 0, d.stderr
    assert any(e.get("event") == "feature_worker_crashed" for e in d.events)
    rows = read_rows(tmp_path / "out.jsonl")
    per_sensor = Counter(r["sensor_id"] for r in readings(rows))
    feats = Counter((r["sensor_id"], r["window_end_seq"]) for r in rows if r["kind"] == "features")
    assert max(feats.values()) == 1
    assert sum(feats.values()) == sum(n // 50 for n in per_sensor.values())
    assert reconciles(d.counters())


def _pool_workers(daemon_pid: int) -> list[int]:
    """Processes running pool work: the forkserver's children (they share its command line;
    the daemon's own forked encoder has the daemon's, the resource tracker its module's)."""
    workers = []
    for pid in descendants(daemon_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"forkserver" not in cmd or descendants(pid):
            continue  # not forked by the forkserver, or the forkserver itself
        workers.append(pid)
    return workers
