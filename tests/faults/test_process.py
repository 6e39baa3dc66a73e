"""Process-level faults: a stdout nobody reads, a SIGKILLed daemon's children, Ctrl-C, and a
stop with 100,000 sensors, driven against the daemon as a process."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import configs
from daemon.observability import events
from tests.e2e.daemonproc import DaemonProcess, descendants, write_config

pytestmark = pytest.mark.e2e

F_GETPIPE_SZ = 1032


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its new parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], within_s: float) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def wait_descendants(d: DaemonProcess, count: int, within_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while len(found := descendants(d.proc.pid)) < count:
        assert time.monotonic() < deadline, f"only {found} of {count} children started"
        time.sleep(0.05)
    return found


@pytest.fixture
def unread(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The daemon with its stdout a pipe nobody reads (stderr to a file)."""
    config = write_config(
        tmp_path, sensors=10, rate_hz=100, max_readings=0, health_interval_s=0.02,
        shutdown_timeout_s=2.0,
    )  # fmt: skip
    with (tmp_path / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_stdout_nobody_reads_does_not_stop_the_daemon(
    unread: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """Before: the first log write into the full pipe blocked the event loop, and SIGTERM
    (a loop signal handler) was never acted on."""
    assert unread.stdout is not None
    fd = unread.stdout.fileno()
    capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
    deadline = time.monotonic() + 20
    level, still = 0, 0
    while still < 10:  # full: half of it or more, and no longer growing for 0.5 s
        assert time.monotonic() < deadline, "the daemon never filled its stdout"
        assert unread.poll() is None, (tmp_path / "stderr").read_text()
        time.sleep(0.05)
        level, before = _pending(fd), level
        still = still + 1 if level == before and level > capacity // 2 else 0
    started = time.monotonic()
    unread.send_signal(signal.SIGTERM)
    code = unread.wait(timeout=2.0 + 5)  # shutdown_timeout_s + the log's close bound + slack
    assert code == 0, (tmp_path / "stderr").read_text()
    assert time.monotonic() - started < 2.0 + 5
    lines = unread.stdout.read().splitlines()
    assert len(lines) > 10
    assert all(json.loads(line) for line in lines)  # whole lines only


def _pending(fd: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


def children_config(tmp_path: Path) -> Path:
    """Features in two pool workers (forkserver, resource tracker) and the jsonl sink's
    encoder child: five descendants."""
    return write_config(
        tmp_path, sensors=20, rate_hz=200, max_readings=0,
        features=configs.features(workers=2, window=16),
    )  # fmt: skip


def test_sigkill_of_the_daemon_leaves_no_process_behind(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    d = DaemonProcess(children_config(tmp_path), cwd=tmp_path)
    daemons.append(d)
    d.wait_event(events.PIPELINE_HEALTH)
    children = wait_descendants(d, 5)
    os.kill(d.proc.pid, signal.SIGKILL)  # the daemon alone, not its process group
    d.proc.wait()
    left = wait_gone(children, within_s=3.0)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:100] for p in left]


def test_ctrl_c_stops_the_daemon_and_its_children_without_tracebacks(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    d = DaemonProcess(children_config(tmp_path), cwd=tmp_path)
    daemons.append(d)
    d.wait_event(events.PIPELINE_HEALTH)
    children = wait_descendants(d, 5)
    os.killpg(d.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert d.finish(timeout=25) == 0
    err = d.stderr
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert not wait_gone(children, within_s=3.0)
    assert d.counters()["read"] > 0


def test_100k_sensors_stop_within_the_shutdown_timeout(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Before: cancelling 100,000 sensor tasks at once and waiting on them held the loop for
    seconds (4.6 s to stop the source, 6.3 s to exit with a 5 s timeout)."""
    timeout_s = 5.0
    config = write_config(
        tmp_path, sensors=100_000, rate_hz=10, max_readings=0, health_interval_s=2.0,
        shutdown_timeout_s=timeout_s,
    )  # fmt: skip
    d = DaemonProcess(config, cwd=tmp_path)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == events.PIPELINE_HEALTH and e["report"] >= 3, 60)
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=30) == 0
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s, f"exit {elapsed:.1f} s after SIGTERM"
    assert not [e for e in d.events if e["event"] == events.SHUTDOWN_TIMEOUT]
