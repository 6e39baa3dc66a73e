"""Replaying a file through the daemon: malformed lines are dead-lettered with their line number
and reason, counted as rejected, and the replay goes on to the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles

pytestmark = pytest.mark.e2e


def test_file_replay_dead_letters_bad_lines_and_delivers_the_rest(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    lines = ["sensor_id,seq,ts,value,unit"]
    for seq in range(300):
        lines.append(f"F1,{seq},2026-11-21T22:48:{seq % 60:02d}.000000Z,{20 + seq % 50},celsius")
    bad = {
        5: "F1,x,2026-11-21T22:48:00Z,1.0,celsius",
        77: "F1,500,not-a-time,1.0,celsius",
        150: "F1,501,2026-11-21T22:48:00Z,warm,celsius",
    }
    for offset, (index, text) in enumerate(sorted(bad.items())):
        lines.insert(index + offset, text)
    src = tmp_path / "replay.csv"
    src.write_text("\n".join(lines) + "\n")
    cfg = configs.write(
        tmp_path / "replay.toml",
        {
            "daemon": {
                "dead_letter": str(tmp_path / "dead.jsonl"),
                "state_dir": str(tmp_path / "state"),
            },
            "sources": [{"type": "file", "path": str(src)}],
            "stages": [{"type": "moving_average", "window": 3}],
            "sinks": [
                {
                    "type": "jsonl",
                    "path": str(tmp_path / "out.jsonl"),
                    "spool_dir": str(tmp_path / "spool"),
                }
            ],
        },
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    assert d.finish(timeout=60) == 0, d.stderr
    c = d.counters()
    assert c["read"] == 303
    assert c["rejected"] == 3
    assert c["written"] == 300
    assert reconciles(c)
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(x["line"] for x in dead) == sorted(i + 1 + k for k, i in enumerate(sorted(bad)))
    assert all(x["reason"] and x["source"] == "sources[0]" for x in dead)
    assert {x["raw"] for x in dead} == set(bad.values())
    rd = readings(read_rows(tmp_path / "out.jsonl"))
    assert [r["seq"] for r in rd] == list(range(300))
    assert rd[2]["moving_avg"] == pytest.approx((20 + 21 + 22) / 3)
