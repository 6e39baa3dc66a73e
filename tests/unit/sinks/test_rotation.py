"""Rotation naming: `<path>.<n>`, continuing after the highest n, never overwriting."""

from __future__ import annotations

from pathlib import Path

from daemon.sinks.jsonl.rotation import highest_rotation, rotate, rotated_path


def test_rotated_path_is_beside_the_file(tmp_path: Path) -> None:
    assert rotated_path(tmp_path / "a.jsonl", 3) == tmp_path / "a.jsonl.3"


def test_highest_rotation_ignores_other_names(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    assert highest_rotation(path) == 0
    assert highest_rotation(tmp_path / "missing" / "a.jsonl") == 0
    for name in ["a.jsonl.2", "a.jsonl.10", "a.jsonl.x", "a.jsonl.-3", "a.jsonl.٣", "b.jsonl.99"]:
        (tmp_path / name).write_bytes(b"")
    assert highest_rotation(path) == 10


def test_rotate_skips_names_that_appeared_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"mine")
    (tmp_path / "a.jsonl.3").write_bytes(b"someone else's")
    assert rotate(path, 2) == 4
    assert not path.exists()
    assert (tmp_path / "a.jsonl.4").read_bytes() == b"mine"
    assert (tmp_path / "a.jsonl.3").read_bytes() == b"someone else's"
