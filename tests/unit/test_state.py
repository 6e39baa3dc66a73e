"""The state store: atomic, survives what a hostile operator does to its directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from structlog.testing import capture_logs

from daemon.state import StateStore


def test_saved_state_is_written_at_flush_and_read_back_by_another_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.save("simulated:S", {"next_seq": np.arange(3)})
    assert not (tmp_path / "state").exists()  # nothing is written before the flush
    assert store.load("simulated:S") is not None  # but this run sees it already
    assert store.flush() and not store.dirty
    again = StateStore(tmp_path / "state")
    assert again.load("simulated:S") == {"next_seq": [0, 1, 2]}
    assert again.load("file:/nowhere") is None
    names = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert len(names) == 1 and names[0].startswith("simulated_S-")  # no temporary left


def test_distinct_keys_never_share_a_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.file_for("file:/a/b") != store.file_for("file:/a_b")


def test_a_corrupt_state_file_is_moved_aside_and_logged_not_fatal(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    path = store.file_for("file:/x")
    path.write_bytes(b'{"next_line": 12')  # torn by hand
    with capture_logs() as logs:
        assert store.load("file:/x") is None
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert [e["event"] for e in logs] == ["state_corrupt"]
    store.file_for("file:/y").mkdir()  # a directory where a state file should be
    with capture_logs() as logs:
        assert store.load("file:/y") is None
    assert logs[0]["event"] == "state_corrupt"


def test_a_failed_write_keeps_the_latest_value_and_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    store = StateStore(blocker)
    store.save("k", 1)
    with capture_logs() as logs:
        assert not store.flush()
        store.save("k", 2)  # a newer value arrives meanwhile
        assert not store.flush()
    assert [e["event"] for e in logs] == ["state_write_failed"]  # once, not every flush
    blocker.unlink()
    with capture_logs() as logs:
        assert store.flush()
    assert [e["event"] for e in logs] == ["state_write_recovered"]
    assert StateStore(blocker).load("k") == 2


def test_a_deleted_directory_is_recreated(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "data" / "state")
    store.save("k", {"a": 1})
    assert store.flush()
    for p in (tmp_path / "data" / "state").iterdir():
        p.unlink()
    (tmp_path / "data" / "state").rmdir()
    store.save("k", {"a": 2})
    assert store.flush()
    assert StateStore(tmp_path / "data" / "state").load("k") == {"a": 2}


def test_without_a_directory_state_lives_in_memory() -> None:
    store = StateStore(None)
    store.save("k", 5)
    assert store.flush() and store.load("k") == 5
