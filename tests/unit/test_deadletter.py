"""The dead-letter file: on disk before a rejection counts; rejected together, synced once."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from daemon.deadletter import DeadLetter, DeadLetterEntry


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_rejections_written_together_are_synced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    dead = DeadLetter(tmp_path / "sub" / "dead.jsonl")
    records = [{"sensor_id": f"S{i:04d}", "seq": i} for i in range(500)]
    dead.write_all(DeadLetterEntry("refused", "sinks[0]", r) for r in records)
    dead.write("bad line", "sources[0]", "not json", line=7)
    dead.close()
    assert len(synced) == 2  # one per call, not one per rejection
    assert dead.count == 501
    got = lines(tmp_path / "sub" / "dead.jsonl")
    assert [g["raw"] for g in got[:500]] == records
    assert {(g["reason"], g["source"]) for g in got[:500]} == {("refused", "sinks[0]")}
    assert {k: got[500][k] for k in ("reason", "source", "raw", "line")} == {
        "reason": "bad line",
        "source": "sources[0]",
        "raw": "not json",
        "line": 7,
    }
    assert all(str(g["ts"]).endswith("Z") for g in got)


def test_nothing_rejected_writes_nothing(tmp_path: Path) -> None:
    dead = DeadLetter(tmp_path / "dead.jsonl")
    dead.write_all([])
    dead.close()
    assert not (tmp_path / "dead.jsonl").exists()
    assert dead.count == 0
