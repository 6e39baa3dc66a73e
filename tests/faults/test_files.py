"""Faults in the files the daemon writes, driven against the daemon as a process: a sink file
whose last line a killed run tore, and the data directory (sink file and dead-letter file)
deleted while the daemon writes into it."""

from __future__ import annotations

import os
import shutil
import signal
import time
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks import configs
from daemon.observability import events
from tests.e2e.daemonproc import DaemonProcess, Event, reconciles, write_config

pytestmark = pytest.mark.e2e

FRAGMENT = b'{"kind":"reading'


def parsed(path: Path) -> list[dict[str, Any]]:
    """Every line of `path` as JSON (raises if one is not)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def keys(rows: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(r["sensor_id"], r["seq"]) for r in rows if r.get("kind") == "reading"}


def test_a_torn_tail_is_cut_and_dead_lettered_before_the_run_appends(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    out = tmp_path / "out.jsonl"
    earlier = [{"kind": "reading", "sensor_id": "OLD", "seq": i, "value": 1.5} for i in range(3)]
    whole = b"".join(orjson.dumps(r) + b"\n" for r in earlier)
    out.write_bytes(whole + FRAGMENT)  # what SIGKILL during a large write leaves
    cfg = write_config(tmp_path, sensors=10, rate_hz=1000.0, max_readings=200, sink_path=out)
    daemon = DaemonProcess(cfg, cwd=tmp_path)
    daemons.append(daemon)
    assert daemon.finish(timeout=30) == 0

    rows = parsed(out)  # every line is whole JSON
    assert rows[:3] == earlier
    counters = daemon.counters()
    assert reconciles(counters)
    assert counters["written"] == len(keys(rows[3:])) == len(rows) - 3 > 0
    assert counters["rejected"] == 0  # the fragment was never a reading the counters saw
    [entry] = parsed(tmp_path / "dead-letter.jsonl")
    assert entry["reason"] == f"torn line at {out}:{len(whole)} after a crash"
    assert entry["raw"] == FRAGMENT.decode()
    [event] = [e for e in daemon.events if e.get("event") == events.TORN_LINE_REPAIRED]
    assert (event["offset"], event["bytes"], event["action"]) == (len(whole), len(FRAGMENT), "cut")


def deletion_config(tmp: Path, out: Path, dead: Path) -> Path:
    """Simulated sensors at a modest rate into `out`, and a CSV replay whose every 10th line is
    malformed (a steady trickle of dead letters into `dead`), until SIGTERM."""
    source = tmp / "in.csv"
    rows = [
        f"F{i % 20:03d},{i // 20},{1.7e9 + i / 100:.2f},{20 + i % 50}"
        if i % 10
        else f"F{i % 20:03d},not-a-seq,0,0"
        for i in range(20_000)
    ]
    source.write_text("sensor_id,seq,ts,value\n" + "\n".join(rows) + "\n")
    base = write_config(
        tmp, sensors=10, rate_hz=200.0, max_readings=0, sink_path=out, health_interval_s=0.25
    )
    doc = tomllib.loads(base.read_text())
    doc["daemon"] |= {"dead_letter": str(dead), "state_dir": str(tmp / "state")}
    # read_bytes at its minimum: ~140 lines a chunk, so rejections come every ~0.35 s
    doc["sources"].append({"type": "file", "path": str(source), "rate_hz": 400, "read_bytes": 4096})
    return configs.write(tmp / "deleted.toml", doc)


def next_event(daemon: DaemonProcess, name: str, timeout: float = 10.0) -> Event:
    """The first `name` event logged from now on."""
    before = {id(e) for e in daemon.events}
    return daemon.wait_for(lambda e: id(e) not in before and e.get("event") == name, timeout)


def test_a_deleted_data_directory_is_recreated_and_holds_what_is_counted_after(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """`rm -rf data/` mid-run. Hard links taken just before keep the deleted files' inodes, so
    everything the daemon wrote into them stays readable: every reading counted written is in
    the old file or the new one (no more than were written or spooled are), and everything
    counted after the deletion was noticed is in the new file, which exists at the path."""
    data = tmp_path / "data"
    out, dead = data / "out.jsonl", data / "dead-letter.jsonl"
    daemon = DaemonProcess(deletion_config(tmp_path, out, dead), cwd=tmp_path)
    daemons.append(daemon)
    daemon.wait_for(
        lambda e: (
            e.get("event") == events.PIPELINE_HEALTH
            and e["counters"]["written"] > 0
            and e["counters"]["rejected"] > 0
        )
    )
    kept = tmp_path / "kept"
    kept.mkdir()
    os.link(out, kept / out.name)
    os.link(dead, kept / dead.name)
    shutil.rmtree(data)

    def reopened(e: Event, sink: bool) -> bool:
        return e.get("event") == events.FILE_REOPENED and ("sink" in e) == sink

    assert daemon.wait_for(lambda e: reopened(e, sink=True))["cause"] == "deleted"
    assert daemon.wait_for(lambda e: reopened(e, sink=False))["path"] == str(dead)
    after_detection = next_event(daemon, events.PIPELINE_HEALTH)["counters"]
    time.sleep(0.5)
    daemon.signal(signal.SIGTERM)
    assert daemon.finish(timeout=20) == 0

    counters = daemon.counters()
    assert reconciles(counters)
    new, old = keys(parsed(out)), keys(parsed(kept / out.name))
    assert counters["written"] - after_detection["written"] <= len(new)
    assert counters["written"] <= len(new | old) <= counters["written"] + counters["spooled"]
    new_dead, old_dead = parsed(dead), parsed(kept / dead.name)
    assert new_dead, "rejections after the deletion are in the recreated dead-letter file"
    rejected = {(d["source"], d["line"]) for d in new_dead + old_dead}
    assert len(rejected) == counters["rejected"]
    assert counters["rejected"] - after_detection["rejected"] <= len(new_dead)
