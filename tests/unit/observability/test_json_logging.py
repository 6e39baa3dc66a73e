"""The JSON log: line shape, level filtering (also for cached loggers), reopen, stdlib and
uncaught exceptions."""

from __future__ import annotations

import json
import logging
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog

from daemon.observability.logging import configure_logging, reconfigure

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _back_to_stdout() -> Iterator[None]:
    yield
    configure_logging("info", "")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_line_is_one_json_object_with_the_fixed_keys_first(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "ingestd.log"  # the directory does not exist yet
    configure_logging("info", str(log_file))
    log = structlog.get_logger("daemon.sinks.jsonl.sink")
    log.info("sink_opened", path="data/x.jsonl", batches=3, ratio=0.5, tags=("a", "b"))

    [line] = lines(log_file)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert TIMESTAMP.match(line["timestamp"]), line["timestamp"]
    assert line["level"] == "info"
    assert line["logger"] == "daemon.sinks.jsonl.sink"
    assert line["event"] == "sink_opened"
    assert line["path"] == "data/x.jsonl"
    assert line["batches"] == 3
    assert line["ratio"] == 0.5
    assert line["tags"] == ["a", "b"]


def test_levels_below_the_threshold_are_dropped(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("warning", str(log_file))
    log = structlog.get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [(x["level"], x["event"]) for x in lines(log_file)] == [
        ("warning", "w"),
        ("error", "e"),
    ]


def test_reconfigure_changes_the_level_of_an_already_cached_logger(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("info", str(log_file))
    log = structlog.get_logger("cached")
    log.info("first")  # caches the bound logger
    log.debug("hidden")
    reconfigure("debug", str(log_file))
    log.debug("shown")
    reconfigure("error", str(log_file))
    log.warning("hidden too")
    log.error("last")
    assert [x["event"] for x in lines(log_file)] == ["first", "shown", "last"]


def test_reconfigure_moves_to_another_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b" / "b.log"
    configure_logging("info", str(first))
    log = structlog.get_logger("t")
    log.info("one")
    reconfigure("info", str(second))
    log.info("two")
    assert [x["event"] for x in lines(first)] == ["one"]
    assert [x["event"] for x in lines(second)] == ["two"]


def test_an_exception_is_one_field_not_raw_traceback_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("info", str(log_file))
    try:
        raise ValueError("bad value 42")
    except ValueError:
        structlog.get_logger("t").exception("pipeline_failed")
    [line] = lines(log_file)
    assert line["level"] == "error"
    assert "Traceback" in line["exception"]
    assert "ValueError: bad value 42" in line["exception"]


def test_numpy_values_and_unknown_objects_are_serialised(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("info", str(log_file))
    structlog.get_logger("t").info(
        "x", n=np.int64(7), v=np.float64(1.5), arr=np.arange(3), path=Path("/p"), big=2**70
    )
    [line] = lines(log_file)
    assert (line["n"], line["v"], line["arr"], line["path"]) == (7, 1.5, [0, 1, 2], "/p")
    assert line["big"] == str(2**70)


def test_stdout_mode_writes_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sink = configure_logging("info", "")
    structlog.get_logger("daemon").info("daemon_started", sources=1)
    sink.reopen()  # a no-op on stdout
    structlog.get_logger("daemon").info("after_reopen")
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["event"] for x in out] == ["daemon_started", "after_reopen"]


def test_stdlib_logging_is_rendered_as_json(tmp_path: Path) -> None:
    log_file = tmp_path / "ingestd.log"
    configure_logging("info", str(log_file))
    logging.getLogger("aiomqtt.client").warning("reconnecting in %d s", 3)
    logging.getLogger("aiomqtt.client").debug("below the level")
    [line] = lines(log_file)
    assert (line["logger"], line["level"], line["event"]) == (
        "aiomqtt.client",
        "warning",
        "reconnecting in 3 s",
    )


def test_reopen_after_rename_loses_and_duplicates_no_line(tmp_path: Path) -> None:
    """logrotate's rename + create + SIGHUP while another thread keeps logging."""
    log_file = tmp_path / "ingestd.log"
    rotated = tmp_path / "ingestd.log.1"
    sink = configure_logging("info", str(log_file))
    log = structlog.get_logger("writer")
    total = 3000
    started = threading.Event()

    def writer() -> None:
        for i in range(total):
            log.info("tick", i=i)
            if i == 200:
                started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(10)
    log_file.rename(rotated)  # lines keep going to the renamed file until reopen
    sink.reopen()
    thread.join(10)

    old, new = lines(rotated), lines(log_file)
    assert new, "nothing reached the reopened file"
    seen = [x["i"] for x in old] + [x["i"] for x in new]
    assert seen == list(range(total))


def test_a_failed_reopen_keeps_logging_to_the_old_file(tmp_path: Path) -> None:
    log_file = tmp_path / "dir" / "ingestd.log"
    sink = configure_logging("info", str(log_file))
    log = structlog.get_logger("t")
    log.info("before")
    log_file.parent.rename(tmp_path / "moved")
    log_file.parent.write_text("a file where the log directory was")  # reopen cannot succeed
    sink.reopen()
    log.info("after")
    events = [x["event"] for x in lines(tmp_path / "moved" / "ingestd.log")]
    assert events == ["before", "log_reopen_failed", "after"]


def test_an_unopenable_log_file_keeps_the_current_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    configure_logging("info", str(blocker / "ingestd.log"))  # cannot exist: stays on stdout
    structlog.get_logger("t").info("still_here")
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["log_reopen_failed", "still_here"]
    assert events[0]["path"] == str(blocker / "ingestd.log")


def test_a_failing_log_write_never_reaches_the_caller(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A full log disk (here a real EFBIG from RLIMIT_FSIZE) must not break the pipeline."""
    log_file = tmp_path / "ingestd.log"
    sink = configure_logging("info", str(log_file))
    log = structlog.get_logger("t")
    log.info("fits")
    size = log_file.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        log.error("does_not_fit", detail="x" * 200)  # must not raise
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert sink.failed_writes == 1
    assert '"event":"does_not_fit"' in capfd.readouterr().err  # the last resort: fd 2
    log.info("fits again")
    assert [x["event"] for x in lines(log_file)][-1] == "fits again"


def test_an_uncaught_exception_is_a_json_line_and_nothing_else(tmp_path: Path) -> None:
    code = (
        "from daemon.observability.logging import configure_logging\n"
        "configure_logging('info', '')\n"
        "raise RuntimeError('boom at startup')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr == ""
    [line] = [json.loads(x) for x in proc.stdout.splitlines()]
    assert line["event"] == "uncaught_exception"
    assert line["level"] == "critical"
    assert "RuntimeError: boom at startup" in line["exception"]
