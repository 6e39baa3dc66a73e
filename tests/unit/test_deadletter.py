"""The dead-letter file: on disk before a rejection counts; rejected together, synced once; in
the file at its path even when that is deleted or replaced; a torn last line cut and kept."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from daemon import deadletter
from daemon.deadletter import DeadLetter, DeadLetterEntry
from daemon.observability.events import FILE_REOPENED, TORN_LINE_REPAIRED


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


def test_a_deleted_file_and_directory_are_recreated_and_logged(tmp_path: Path) -> None:
    path = tmp_path / "data" / "dead.jsonl"
    dead = DeadLetter(path)
    dead.write("first", "sources[0]", "a")
    shutil.rmtree(tmp_path / "data")
    with capture_logs() as logs:
        dead.write("second", "sources[0]", "b")
    dead.close()
    assert [g["raw"] for g in lines(path)] == ["b"]
    assert [(e["event"], e["cause"]) for e in logs] == [(FILE_REOPENED, "deleted")]
    assert dead.count == 2


def test_a_deletion_during_the_write_writes_the_entries_again_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion lands after the entries were written and synced into the old file: they
    are written again into the new one, so a counted rejection is in the file at the path."""
    path = tmp_path / "dead.jsonl"
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync_then_delete(fd: int) -> None:
        real_fsync(fd)
        if not calls:
            path.unlink()
        calls.append(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_delete)
    dead = DeadLetter(path)
    with capture_logs() as logs:
        dead.write_all(DeadLetterEntry("refused", "sinks[0]", i) for i in range(3))
    dead.close()
    assert [g["raw"] for g in lines(path)] == [0, 1, 2]
    assert [e["event"] for e in logs] == [FILE_REOPENED]
    assert dead.count == 3


def test_a_replaced_file_is_written_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = DeadLetter(path)
    dead.write("first", "s", 1)
    path.rename(tmp_path / "old.jsonl")
    path.write_bytes(b"")
    dead.write("second", "s", 2)
    dead.close()
    assert [g["raw"] for g in lines(tmp_path / "old.jsonl")] == [1]
    assert [g["raw"] for g in lines(path)][-1] == 2


def test_a_torn_last_line_is_cut_and_kept_as_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    whole = b'{"reason":"earlier","raw":"x"}\n'
    path.write_bytes(whole + b'{"reason":"torn","ra')
    dead = DeadLetter(path)
    with capture_logs() as logs:
        dead.write("next", "sources[0]", "y")
    dead.close()
    got = lines(path)  # every line parses
    assert [g["reason"] for g in got] == [
        "earlier",
        f"torn line at {path}:{len(whole)} after a crash",
        "next",
    ]
    assert got[1]["raw"] == '{"reason":"torn","ra'
    assert [e["event"] for e in logs] == [TORN_LINE_REPAIRED]
    assert dead.count == 1  # the note is not a rejection


def test_a_device_path_is_written_without_checks(tmp_path: Path) -> None:
    dead = DeadLetter("/dev/null")
    with capture_logs() as logs:
        dead.write("r", "s", 1)
    dead.close()
    assert logs == []
    assert dead.count == 1


def test_a_refused_write_waits_in_memory_and_goes_first_once_the_disk_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")  # every open fails: ENOTDIR
    dl = DeadLetter(blocker / "dead-letter.jsonl")
    with capture_logs() as logs:
        dl.write("bad value", "sources[0]", "line one")  # does not raise
        dl.write("bad value", "sources[0]", "line two")
    assert dl.pending == 2 and dl.count == 0
    assert [e["event"] for e in logs] == ["dead_letter_failed"]  # once an episode
    blocker.unlink()
    with capture_logs() as logs:
        dl.retry()
    assert [e["event"] for e in logs] == ["dead_letter_recovered"]
    raws = [json.loads(x)["raw"] for x in (blocker / "dead-letter.jsonl").read_text().splitlines()]
    assert raws == ["line one", "line two"] and dl.pending == 0 and dl.count == 2
    dl.close()


def test_what_the_backlog_cannot_hold_is_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletter, "BACKLOG_BYTES", 400)
    blocker = tmp_path / "data"
    blocker.write_text("")
    dl = DeadLetter(blocker / "dead-letter.jsonl")
    for i in range(20):
        dl.write("bad", "sources[0]", f"line {i:02d} " + "x" * 40)
    assert dl.dropped > 0 and dl.pending + dl.dropped == 20
    blocker.unlink()
    dl.retry()
    kept = [
        json.loads(x)["raw"][:7] for x in (blocker / "dead-letter.jsonl").read_text().splitlines()
    ]
    assert kept == [f"line {i:02d}" for i in range(dl.dropped, 20)]  # the oldest went first
