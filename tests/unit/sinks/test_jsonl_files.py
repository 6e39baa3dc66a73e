"""The jsonl sink against what happens to its file from outside (issue 9, items 1 and 6): a torn
last line a killed run left (cut, dead-lettered, not counted), and the file or its directory
deleted or replaced while it runs (noticed, recreated, the batch written again there)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs

from daemon import durable
from daemon.batch import Batch
from daemon.components import SinkError
from daemon.observability.events import FILE_REOPENED, TORN_LINE_REPAIRED
from daemon.sinks.jsonl import JsonlSink, rotation
from daemon.sinks.jsonl import sink as sink_module
from daemon.wire import encode_batch
from tests.support import TestContext, levers

LINES = b'{"kind":"reading","seq":1}\n{"kind":"reading","seq":2}\n'


def batch(first_seq: int, n: int = 5) -> Batch:
    seq = np.arange(first_seq, first_seq + n)
    return Batch.of_sensor("files-S1", seq, 1.7e9 + seq * 0.1, seq * 1.5, unit="celsius")


def make_sink(tmp_path: Path, path: Path, **keys: Any) -> JsonlSink:
    config = JsonlSink.Config(path=str(path), **keys)
    return JsonlSink(config, TestContext("sinks[0]", str(tmp_path / "dl" / "dead-letter.jsonl")))


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dl" / "dead-letter.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def all_json(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# -- a torn tail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "fragment"),
    [
        (LINES, b'{"kind":"reading'),
        (b"", b'{"kind":"reading","sensor_id":"S'),  # the whole file is one fragment
        (LINES, b'{"kind":"reading","unit":"\xc2'),  # cut inside a UTF-8 character
    ],
)
async def test_a_torn_tail_is_cut_dead_lettered_and_not_counted(
    tmp_path: Path, before: bytes, fragment: bytes
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(before + fragment)
    sink = make_sink(tmp_path, path)
    with capture_logs() as logs:
        await sink.open()
    await sink.write(batch(0))
    await sink.close()
    assert path.read_bytes() == before + encode_batch(batch(0))
    all_json(path)  # every line parses
    [entry] = dead_letters(tmp_path)
    assert entry["reason"] == f"torn line at {path}:{len(before)} after a crash"
    assert entry["raw"] == fragment.decode("utf-8", errors="replace")
    assert (entry["source"], entry["offset"], entry["bytes"]) == (
        "sinks[0]",
        len(before),
        len(fragment),
    )
    [event] = [e for e in logs if e["event"] == TORN_LINE_REPAIRED]
    assert (event["offset"], event["action"], event["dead_lettered"]) == (len(before), "cut", True)
    counters = levers(sink).counters
    assert (counters.rejected, counters.read, counters.written) == (0, 0, 0)


async def test_a_whole_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(LINES)
    sink = make_sink(tmp_path, path)
    await sink.open()
    await sink.close()
    assert path.read_bytes() == LINES
    assert dead_letters(tmp_path) == []


def counting_preads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        sizes.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    return sizes


def test_the_tail_is_read_backwards_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole 64 MiB file costs a 1-byte read; a torn one reads back only to its last newline;
    one with no newline in the last TAIL_WINDOW bytes reads that window and no more."""
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.truncate(64 << 20)  # sparse: no newline anywhere
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
    sizes = counting_preads(monkeypatch)
    assert durable.find_torn_tail(path) is None
    assert sizes == [1]
    with path.open("ab") as f:
        f.write(b"x" * 10_000)
    sizes.clear()
    tail = durable.find_torn_tail(path)
    assert tail is not None and tail.whole and tail.fragment == b"x" * 10_000
    assert sum(sizes) < 20_000
    with path.open("ab") as f:
        f.write(b"\0" * (2 * durable.TAIL_WINDOW))
    sizes.clear()
    tail = durable.find_torn_tail(path)
    assert tail is not None and not tail.whole
    assert sum(sizes) - 1 == len(tail.fragment) == durable.TAIL_WINDOW


async def test_an_overlong_unterminated_tail_is_ended_not_cut(tmp_path: Path) -> None:
    """Longer than any line we write: not ours to cut. It is ended with a newline, so our own
    lines start whole, and noted in the dead-letter file."""
    path = tmp_path / "r.jsonl"
    junk = b"j" * (durable.TAIL_WINDOW + 10)
    path.write_bytes(LINES + junk)
    sink = make_sink(tmp_path, path)
    with capture_logs() as logs:
        await sink.open()
        await sink.write(batch(0))
    await sink.close()
    assert path.read_bytes() == LINES + junk + b"\n" + encode_batch(batch(0))
    [entry] = dead_letters(tmp_path)
    assert entry["reason"].startswith("unterminated line longer than")
    assert [e["action"] for e in logs if e["event"] == TORN_LINE_REPAIRED] == ["newline_appended"]


# -- a file deleted or replaced ------------------------------------------------------------


async def test_a_deleted_directory_is_recreated_and_the_next_batch_lands_there(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="batch")
    await sink.open()
    await sink.write(batch(0))
    await sink.flush()
    shutil.rmtree(path.parent)
    with capture_logs() as logs:
        await sink.write(batch(5))
        await sink.flush()
    await sink.close()
    assert path.read_bytes() == encode_batch(batch(5))
    assert [(e["event"], e["cause"]) for e in logs] == [(FILE_REOPENED, "deleted")]
    assert levers(sink).gauge()["reopened"] == 1


async def test_a_replaced_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path)
    await sink.open()
    await sink.write(batch(0))
    path.rename(tmp_path / "moved.jsonl")
    path.write_bytes(LINES)
    with capture_logs() as logs:
        await sink.write(batch(5))
    await sink.close()
    assert (tmp_path / "moved.jsonl").read_bytes() == encode_batch(batch(0))
    assert path.read_bytes() == LINES + encode_batch(batch(5))
    assert [e["cause"] for e in logs if e["event"] == FILE_REOPENED] == ["replaced"]


def unlink_after_first_write(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """The file is deleted right after the sink's first write into it, before its check."""
    real = sink_module._write_all
    calls: list[int] = []

    async def write_all(file: Any, data: Any) -> None:
        await real(file, data)
        if not calls:
            path.unlink()  # noqa: ASYNC240 - the fault, inside the sink's write
        calls.append(1)

    monkeypatch.setattr(sink_module, "_write_all", write_all)


def unlink_before_first_rotation(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """The file is deleted between the sink's check and its rename (the rename fails)."""
    real: Callable[[Path, int], int] = rotation.rotate
    calls: list[int] = []

    def rotate(target: Path, after: int) -> int:
        if not calls:
            path.unlink()
        calls.append(1)
        return real(target, after)

    monkeypatch.setattr(rotation, "rotate", rotate)


async def test_a_deletion_during_the_write_writes_the_batch_again_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path)
    await sink.open()
    unlink_after_first_write(monkeypatch, path)
    await sink.write(batch(0))
    assert path.read_bytes() == encode_batch(batch(0))  # before flush or close
    await sink.close()


async def test_a_deletion_before_rotation_writes_the_batch_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, rotate_bytes=1)
    await sink.open()
    unlink_before_first_rotation(monkeypatch, path)
    await sink.write(batch(0))
    await sink.close()
    assert (tmp_path / "r.jsonl.1").read_bytes() == encode_batch(batch(0))
    assert path.read_bytes() == b""


async def test_a_deletion_found_by_flush_fails_it_so_the_batch_is_written_again(
    tmp_path: Path,
) -> None:
    """Between a write and its flush: the flush fails (the guard retries write + flush, and
    counts the batch once); with nothing written since the last flush it only reopens."""
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path)
    await sink.open()
    await sink.write(batch(0))
    path.unlink()
    with pytest.raises(SinkError, match="deleted after the last write"):
        await sink.flush()
    await sink.write(batch(0))  # the retry
    await sink.flush()
    path.unlink()
    await sink.flush()  # nothing unflushed went into it: reopened, no error
    await sink.write(batch(5))
    await sink.close()
    assert path.read_bytes() == encode_batch(batch(5))


async def test_a_file_that_keeps_vanishing_is_a_sink_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path)
    await sink.open()
    real = sink_module._write_all

    async def always_deleted(file: Any, data: Any) -> None:
        await real(file, data)
        path.unlink()

    monkeypatch.setattr(sink_module, "_write_all", always_deleted)
    with pytest.raises(SinkError, match="deleted or replaced during each of 3 writes"):
        await sink.write(batch(0))
    await sink.close()
