"""The log writer never blocks its caller: a stdout nobody reads, lines never torn, drops counted
and reported, a bounded close."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from daemon.observability.health import HealthReporter
from daemon.observability.logging import configure_logging, dropped_lines
from daemon.observability.logsink import BUFFER_BYTES, LogSink
from daemon.runtime import RunState


@pytest.fixture(autouse=True)
def _back_to_stdout() -> Iterator[None]:
    yield
    configure_logging("info", "")


class Pipe:
    """A pipe whose write end is `sys.stdout` for the test; read it when the test says."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.r, self.w = os.pipe()
        self.stream = os.fdopen(self.w, "w")
        monkeypatch.setattr(sys, "stdout", self.stream)
        self.data = bytearray()
        self._reader: threading.Thread | None = None

    def read_in_background(self, pause_s: float = 0.0) -> None:
        def read() -> None:
            while chunk := os.read(self.r, 65536):
                self.data += chunk
                time.sleep(pause_s)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in bytes(self.data).splitlines()]

    def close(self, sink: LogSink) -> None:
        sink.close(timeout_s=0.2)  # releases the sink's own descriptor of the pipe
        self.stream.close()
        if self._reader is not None:
            self._reader.join(5)
        os.close(self.r)


def test_a_stdout_nobody_reads_never_blocks_a_log_call(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    sink = configure_logging("info", "")
    log = structlog.get_logger("t")
    before = dropped_lines()
    worst = 0.0
    started = time.perf_counter()
    for i in range(5000):  # ~5 MB: the pipe (64 KiB) and the buffer (1 MiB) fill
        t = time.perf_counter()
        log.info("tick", i=i, pad="x" * 1000)
        worst = max(worst, time.perf_counter() - t)
    assert time.perf_counter() - started < 2.0
    assert worst < 0.05, f"one log call took {worst * 1e3:.1f} ms"
    dropped = dropped_lines() - before
    assert dropped > 0

    pipe.read_in_background()  # the reader comes back: the queue drains, the drop is reported
    deadline = time.monotonic() + 10
    while not any(e["event"] == "log_dropped" for e in pipe.events()):
        assert time.monotonic() < deadline, "no log_dropped line"
        time.sleep(0.05)
    events = pipe.events()
    ticks = [e["i"] for e in events if e["event"] == "tick"]
    [report] = [e for e in events if e["event"] == "log_dropped"]
    assert report["dropped"] == dropped == 5000 - len(ticks)
    assert ticks == list(range(len(ticks)))  # the oldest kept, in order: the newest dropped
    assert len(ticks) * 1000 >= BUFFER_BYTES / 2
    pipe.close(sink)


def test_lines_from_many_threads_are_never_torn_or_interleaved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines up to 200 KB (far past PIPE_BUF: partial writes) into a slowly read pipe."""
    pipe = Pipe(monkeypatch)
    sink = configure_logging("info", "")
    log = structlog.get_logger("t")
    pipe.read_in_background(pause_s=0.001)
    sizes = [10, 5000, 70_000, 200_000]
    before = sink.dropped

    def writer(k: int) -> None:
        for i in range(60):
            log.info("line", thread=k, i=i, pad="y" * sizes[(i + k) % len(sizes)])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sink.flush(10)
    time.sleep(0.2)
    events = pipe.events()  # raises if any line is not whole JSON
    lines = [e for e in events if e["event"] == "line"]
    for k in range(4):
        seen = [e["i"] for e in lines if e["thread"] == k]
        assert seen == sorted(seen)
    assert len(lines) + sink.dropped - before == 240  # each line written, or dropped and counted
    pipe.close(sink)


def test_close_gives_up_on_a_reader_that_never_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    sink = configure_logging("info", "")
    log = structlog.get_logger("t")
    for i in range(300):
        log.info("tick", i=i, pad="z" * 1000)  # ~300 KB: the pipe fills, the rest queues
    before = sink.dropped
    started = time.monotonic()
    sink.close(timeout_s=0.3)
    assert time.monotonic() - started < 1.0
    assert sink.dropped > before  # what was left is counted, not silently lost
    pipe.stream.close()
    os.close(pipe.r)


def test_a_socket_stdout_is_written_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    """journald's stdout is a stream socket: MSG_DONTWAIT, the socket itself left blocking."""
    ours, theirs = socket.socketpair()
    ours.setblocking(True)
    stream = os.fdopen(ours.detach(), "w")
    monkeypatch.setattr(sys, "stdout", stream)
    sink = configure_logging("info", "")
    log = structlog.get_logger("t")
    before = sink.dropped
    started = time.perf_counter()
    for i in range(3000):
        log.info("tick", i=i, pad="s" * 1000)
    assert time.perf_counter() - started < 2.0
    assert os.get_blocking(stream.fileno())
    data = bytearray()
    theirs.settimeout(0.5)
    try:
        while chunk := theirs.recv(1 << 20):
            data += chunk
    except TimeoutError:
        pass
    ticks = [json.loads(x)["i"] for x in bytes(data).splitlines() if b'"tick"' in x]
    assert ticks == list(range(len(ticks)))
    assert len(ticks) + sink.dropped - before == 3000
    assert b'"event":"log_dropped"' in data
    sink.close(timeout_s=0.2)
    stream.close()
    theirs.close()


def test_the_health_report_carries_the_dropped_count() -> None:
    snapshot = HealthReporter(RunState.fresh("dead-letter.jsonl"), None).snapshot()
    assert snapshot["log_dropped"] == dropped_lines()


def test_the_log_file_mode_is_still_written_at_once(tmp_path: Any) -> None:
    """The common case stays synchronous: a line is in the file when the call returns."""
    path = tmp_path / "ingestd.log"
    configure_logging("info", str(path))
    structlog.get_logger("t").info("now")
    assert json.loads(path.read_text())["event"] == "now"
