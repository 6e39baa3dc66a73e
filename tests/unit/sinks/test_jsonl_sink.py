"""The jsonl sink on a real filesystem: round trip, rotation and its naming across restarts,
the fsync policy (fsync calls counted), errors surfacing as SinkError, torn writes undone."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.components import PermanentSinkError, SinkError
from daemon.config.fields import ConfigIssue, build
from daemon.observability.events import SINK_OPEN_FAILED, SINK_ROTATED
from daemon.sinks.jsonl import JsonlSink
from daemon.sinks.jsonl.sink import FsyncPolicy
from daemon.wire import encode_batch
from tests.support import TestContext


def batch(first_seq: int, n: int = 5) -> Batch:
    seq = np.arange(first_seq, first_seq + n)
    return Batch.of_sensor(
        "jsonl-S1", seq, 1.7e9 + seq * 0.1, seq * 1.5, unit="celsius", columns={"m": seq / 2}
    )


def same_size(i: int) -> Batch:
    """Batch i of a run whose batches all encode to the same number of bytes."""
    seq = np.arange(1000 + 5 * i, 1005 + 5 * i)
    return Batch.of_sensor("jsonl-S1", seq, 1.7e9 + seq * 0.125, np.full(5, 12.5))


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def inode(path: Path) -> int:
    return path.stat().st_ino


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_sink(
    tmp_path: Path,
    path: Path,
    *,
    rotate_bytes: int = 0,
    fsync: FsyncPolicy = "interval",
    fsync_interval_s: float = 1.0,
    clock: Clock | None = None,
) -> JsonlSink:
    config = JsonlSink.Config(
        path=str(path), rotate_bytes=rotate_bytes, fsync=fsync, fsync_interval_s=fsync_interval_s
    )
    ctx = TestContext("sinks[0]", str(tmp_path / "dead-letter.jsonl"), clock=clock or Clock())
    return JsonlSink(config, ctx)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync call's inode (the real fsync still runs)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_round_trip_and_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "readings.jsonl"
    sink = make_sink(tmp_path, path)
    await sink.open()
    assert path.parent.is_dir()
    batches = [batch(0), batch(5, 3), batch(8, 1)]
    for b in batches:
        await sink.write(b)
        await sink.flush()
    await sink.close()
    assert path.read_bytes() == b"".join(encode_batch(b) for b in batches)
    seqs = [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]
    assert seqs == list(range(9))
    assert listing(path.parent) == ["readings.jsonl"]


async def test_acknowledged_bytes_are_in_the_file_before_flush(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="never")
    await sink.open()
    await sink.write(batch(0))
    with path.open("rb") as other_reader:  # another process would see the same
        assert other_reader.read() == encode_batch(batch(0))
    await sink.close()


async def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"kind":"reading","seq":-1}\n')
    sink = make_sink(tmp_path, path)
    await sink.open()
    await sink.write(batch(0))
    await sink.close()
    assert path.read_bytes() == b'{"kind":"reading","seq":-1}\n' + encode_batch(batch(0))


async def test_nothing_to_write_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="batch")
    await sink.open()
    await sink.write(Batch.from_columns([], [], [], []))
    assert path.read_bytes() == b""
    derived_only = Batch.from_columns([], [], [], [])
    derived_only.derived = [{"kind": "features", "count": 3}]
    await sink.write(derived_only)
    await sink.close()
    assert path.read_bytes() == b'{"kind":"features","count":3}\n'


async def test_rotation_names_and_contents(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    pair = [encode_batch(same_size(i)) for i in range(5)]
    assert len({len(p) for p in pair}) == 1
    sink = make_sink(tmp_path, path, rotate_bytes=len(pair[0]) + 1)  # every 2nd batch crosses
    await sink.open()
    with capture_logs() as logs:
        for i in range(5):
            await sink.write(same_size(i))
    await sink.close()
    assert listing(tmp_path) == ["r.jsonl", "r.jsonl.1", "r.jsonl.2"]
    assert (tmp_path / "r.jsonl.1").read_bytes() == pair[0] + pair[1]
    assert (tmp_path / "r.jsonl.2").read_bytes() == pair[2] + pair[3]
    assert path.read_bytes() == pair[4]
    rotated = [e["rotated_to"] for e in logs if e["event"] == SINK_ROTATED]
    assert rotated == [str(tmp_path / "r.jsonl.1"), str(tmp_path / "r.jsonl.2")]


async def test_rotation_opens_a_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, rotate_bytes=1)
    await sink.open()
    await sink.write(batch(0))
    assert path.exists() and path.read_bytes() == b""
    assert (tmp_path / "r.jsonl.1").read_bytes() == encode_batch(batch(0))
    await sink.close()


async def test_rotation_continues_after_the_highest_n_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for name in ["r.jsonl.1", "r.jsonl.4", "r.jsonl.2", "r.jsonl.12x", "r.jsonl.bak", "q.jsonl.9"]:
        (tmp_path / name).write_bytes(name.encode())
    sink = make_sink(tmp_path, path, rotate_bytes=1)
    await sink.open()
    await sink.write(batch(0))
    await sink.close()
    assert (tmp_path / "r.jsonl.5").read_bytes() == encode_batch(batch(0))
    # a second run continues after 5; earlier files are never renamed again
    sink = make_sink(tmp_path, path, rotate_bytes=1)
    await sink.open()
    await sink.write(batch(10))
    await sink.close()
    assert (tmp_path / "r.jsonl.6").read_bytes() == encode_batch(batch(10))
    for name in ["r.jsonl.1", "r.jsonl.4", "r.jsonl.2", "r.jsonl.12x", "r.jsonl.bak", "q.jsonl.9"]:
        assert (tmp_path / name).read_bytes() == name.encode()


async def test_no_rotation_when_rotate_bytes_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, rotate_bytes=0)
    await sink.open()
    for i in range(20):
        await sink.write(batch(i * 5))
    await sink.close()
    assert listing(tmp_path) == ["r.jsonl"]


async def test_fsync_batch_syncs_every_write(tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="batch")
    await sink.open()
    for i in range(3):
        await sink.write(batch(i * 5))
        await sink.flush()  # nothing new to sync: no extra fsync
    ino = inode(path)
    assert fsyncs == [ino, ino, ino]
    await sink.close()
    assert fsyncs == [ino, ino, ino]


async def test_fsync_interval_syncs_once_the_interval_passed(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    clock = Clock()
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="interval", fsync_interval_s=1.0, clock=clock)
    await sink.open()
    await sink.write(batch(0))
    await sink.flush()
    clock.now += 0.5
    await sink.write(batch(5))
    await sink.flush()
    await sink.synced()
    assert fsyncs == []
    clock.now += 0.5
    await sink.flush()  # starts an fsync in the background; nothing waits for it...
    await sink.synced()  # ...but here
    assert len(fsyncs) == 1
    await sink.flush()  # nothing written since
    clock.now += 5.0
    await sink.flush()
    await sink.synced()
    assert len(fsyncs) == 1
    await sink.write(batch(10))  # the interval is long past: this write syncs
    await sink.synced()
    assert len(fsyncs) == 2
    clock.now += 0.1
    await sink.write(batch(15))
    await sink.synced()
    assert len(fsyncs) == 2
    await sink.close()  # close syncs what is left
    assert len(fsyncs) == 3


async def test_fsync_interval_does_not_hold_up_writes_and_reports_its_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interval fsync runs while the next batch is written; if it fails, the next write
    raises (so the batch is retried, and the breaker sees the disk failing) and the one after
    that retries the fsync."""
    clock = Clock()
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="interval", fsync_interval_s=1.0, clock=clock)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_failing_fsync(fd: int) -> None:
        calls.append(fd)
        started.set()
        release.wait(10)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", slow_failing_fsync)
    await sink.open()
    await sink.write(batch(0))
    clock.now += 1.0
    await sink.flush()  # due: the fsync starts in the background
    await asyncio.to_thread(started.wait, 10)
    await sink.write(batch(5))  # written while the fsync is still stuck
    assert path.read_bytes() == encode_batch(batch(0)) + encode_batch(batch(5))
    release.set()
    await sink.synced()
    with pytest.raises(SinkError, match="cannot fsync"):
        await sink.write(batch(10))
    assert path.read_bytes() == encode_batch(batch(0)) + encode_batch(batch(5))  # not written
    monkeypatch.setattr(os, "fsync", calls.append)
    await sink.write(batch(10))  # the retry: now the fsync works again
    await sink.synced()
    assert len(calls) == 2
    await sink.close()


async def test_a_device_or_pipe_is_never_rotated_truncated_or_fsynced(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    """A path that is not a regular file (a benchmark's /dev/null, here a FIFO) is only written
    to: rotating /dev/null as root would rename the machine's /dev/null."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the sink open it for writing
    try:
        sink = make_sink(tmp_path, fifo, rotate_bytes=1, fsync="batch")
        await sink.open()
        await sink.write(batch(0))
        await sink.write(batch(5))
        await sink.close()
        assert os.read(reader, 1 << 20) == encode_batch(batch(0)) + encode_batch(batch(5))
    finally:
        os.close(reader)
    assert sorted(os.listdir(tmp_path)) == ["out.fifo"]  # no out.fifo.1  # noqa: PTH208
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # noqa: PTH116 - the sync check of a test
    assert fsyncs == []


async def test_fsync_never_never_syncs(tmp_path: Path, fsyncs: list[int]) -> None:
    clock = Clock()
    sink = make_sink(tmp_path, tmp_path / "r.jsonl", fsync="never", rotate_bytes=1, clock=clock)
    await sink.open()
    for i in range(3):
        await sink.write(batch(i * 5))
        clock.now += 10
        await sink.flush()
    await sink.close()
    assert fsyncs == []


async def test_rotation_syncs_the_sealed_file_and_directory(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="interval", rotate_bytes=1)
    await sink.open()
    await sink.write(batch(0))
    assert fsyncs == [inode(tmp_path / "r.jsonl.1"), inode(tmp_path)]
    await sink.close()


async def test_fsync_failure_is_a_sink_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    sink = make_sink(tmp_path, tmp_path / "r.jsonl", fsync="batch")
    await sink.open()
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(SinkError, match="fsync"):
        await sink.write(batch(0))
    monkeypatch.undo()
    await sink.close()


async def test_path_that_is_a_directory_fails_writes_not_open(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.mkdir()
    sink = make_sink(tmp_path, path)
    with capture_logs() as logs:
        await sink.open()  # must not raise: the daemon keeps running and spools
    assert [e["event"] for e in logs] == [SINK_OPEN_FAILED]
    with pytest.raises(SinkError, match="cannot open"):
        await sink.write(batch(0))
    path.rmdir()  # the path becomes usable: the next write opens it
    await sink.write(batch(5))
    await sink.close()
    assert path.read_bytes() == encode_batch(batch(5))


async def test_directory_that_cannot_be_created_is_a_sink_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    sink = make_sink(tmp_path, tmp_path / "file" / "r.jsonl")
    await sink.open()
    with pytest.raises(SinkError):
        await sink.write(batch(0))
    await sink.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
async def test_unwritable_directory_is_a_sink_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    sink = make_sink(tmp_path, locked / "r.jsonl")
    await sink.open()
    with pytest.raises(SinkError):
        await sink.write(batch(0))
    await sink.close()


async def test_unencodable_batch_is_permanent(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, tmp_path / "r.jsonl")
    await sink.open()
    bad = Batch.of_sensor("jsonl-S1", [1], [float("nan")], [1.0])
    with pytest.raises(PermanentSinkError):
        await sink.write(bad)
    await sink.close()


@pytest.fixture
def file_size_limit() -> Iterator[None]:
    """Lets the test lower RLIMIT_FSIZE (a real EFBIG, not a mock); restores it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


async def test_torn_write_is_cut_off_so_the_retry_leaves_whole_lines(
    tmp_path: Path, file_size_limit: None
) -> None:
    path = tmp_path / "r.jsonl"
    sink = make_sink(tmp_path, path, fsync="never")
    await sink.open()
    await sink.write(batch(0))
    size = path.stat().st_size
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))  # half a line fits
    try:
        with pytest.raises(SinkError, match="cannot write"):
            await sink.write(batch(5))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    assert path.stat().st_size == size
    await sink.write(batch(5))  # the retry
    await sink.close()
    assert path.read_bytes() == encode_batch(batch(0)) + encode_batch(batch(5))


@pytest.mark.parametrize(
    ("table", "issue"),
    [
        ({}, "sinks[0].path: is required"),
        ({"path": " "}, "sinks[0].path: must not be empty"),
        ({"path": "p", "rotate_bytes": -1}, "sinks[0].rotate_bytes: must be >= 0, got -1"),
        ({"path": "p", "fsync": "sometimes"}, "sinks[0].fsync: must be one of"),
        ({"path": "p", "fsync_interval_s": 0}, "sinks[0].fsync_interval_s: must be > 0, got 0"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, object], issue: str) -> None:
    issues: list[ConfigIssue] = []
    assert build(JsonlSink.Config, table, "sinks[0]", issues) is None
    assert any(str(i).startswith(issue) for i in issues), issues


def test_config_defaults() -> None:
    issues: list[ConfigIssue] = []
    config = build(JsonlSink.Config, {"path": "data/r.jsonl"}, "sinks[0]", issues)
    assert issues == []
    assert config == JsonlSink.Config(
        path="data/r.jsonl", rotate_bytes=256 * 1024 * 1024, fsync="interval", fsync_interval_s=0.25
    )
