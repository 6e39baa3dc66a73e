"""`ingestd top` against a running daemon: in a real terminal (tmux), as plain lines, and with
nothing to talk to.

Under tmux the test does what a user does: start `ingestd top` in a terminal, look at the screen
twice (the numbers move), break the sink and look again (its breaker shows open), press `q`
(the dashboard ends with status 0, no traceback). The sink breaks the way
tests/e2e/test_http_health.py breaks it: its directory is a symlink re-pointed at a regular file,
and a small `rotate_bytes` makes it reopen the path soon. Each tmux server has a private socket
(`-S`, in the test's directory) and is killed at the end; every wait polls the screen against a
deadline.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemonproc import DaemonProcess, write_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HTTP = {"enabled": True, "host": "127.0.0.1", "port": 0}
TMUX = "/usr/bin/tmux"


class Tmux:
    """One private tmux server; `run` starts a command in a window of its own. Its socket is
    a file in the test's directory (`-S`), so nothing is left in /tmp/tmux-UID afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.socket = str(tmp / "tmux.sock")
        self.conf = tmp / "tmux.conf"
        self.conf.write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
        self.started = False

    def tmux(self, *args: str) -> str:
        cmd = [TMUX, "-S", self.socket, "-f", str(self.conf), *args]
        # An explicit env: without one the server inherits the C environment, where a loaded
        # readline may have put COLUMNS=80 LINES=24 that os.environ does not show; the window's
        # programs would believe them over the real 140x50 terminal.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=10, env=env)
        return done.stdout

    def run(self, name: str, command: str) -> str:
        """Start `command` in a 140x50 window; the target to address it by."""
        if not self.started:
            self.tmux("new-session", "-d", "-s", "top", "-n", name, "-x", "140", "-y", "50",
                      "-c", str(ROOT), command)  # fmt: skip
            self.started = True
        else:
            self.tmux("new-window", "-t", "top", "-n", name, "-c", str(ROOT), command)
        return f"top:{name}"

    def screen(self, target: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", target)

    def kill(self) -> None:
        if self.started:
            subprocess.run(
                [TMUX, "-S", self.socket, "kill-server"],
                check=False,
                capture_output=True,
                timeout=10,
            )


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if not Path(TMUX).exists():
        pytest.skip("tmux is not installed")
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def wait_for(probe: Callable[[], str], ok: Callable[[str], bool], what: str, t: float = 20) -> str:
    deadline = time.monotonic() + t
    while True:
        seen = probe()
        if ok(seen):
            return seen
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last:\n{seen}"
        time.sleep(0.1)


def read_total(screen: str) -> int | None:
    match = re.search(r"^\s*read\s+([\d,]+)\s", screen, re.MULTILINE)
    return int(match.group(1).replace(",", "")) if match else None


def plain_total(line: str, name: str) -> int:
    """`name`'s total in a plain summary line: `... read 1,234 (500/s) ...`."""
    match = re.search(rf"\b{name} ([\d,]+) \(", line)
    assert match, line
    return int(match.group(1).replace(",", ""))


@dataclass(frozen=True)
class Top:
    """`ingestd top` run by a shell that writes its exit status and its stderr to files: tmux
    3.3a sometimes leaves a finished child unreaped for long (no `pane_dead_status`), and what
    a program printed last on its terminal does not always survive it leaving the alternate
    screen, so neither the pane nor its screen is asked how it ended."""

    command: str
    status: Path
    stderr: Path

    def exit_status(self) -> int:
        wait_for(lambda: str(self.status.exists()), lambda s: s == "True", "ingestd top to exit")
        return int(wait_for(self.status.read_text, lambda s: s.endswith("\n"), "its status"))


def top(tmp: Path, base: str, name: str) -> Top:
    status, stderr = tmp / f"{name}.status", tmp / f"{name}.stderr"
    run = shlex.join([sys.executable, "-m", "daemon", "top", "--url", base])
    # `trap :`, not `trap ''`: an ignored SIGINT would be inherited, a handled one is not
    script = f"trap : INT; {run} 2>{shlex.quote(str(stderr))}; echo $? >{shlex.quote(str(status))}"
    return Top(shlex.join(["sh", "-c", script]), status, stderr)


def start_daemon(tmp: Path, daemons: list[DaemonProcess], **kw: Any) -> tuple[DaemonProcess, str]:
    d = DaemonProcess(write_config(tmp, sensors=5, rate_hz=200, max_readings=0, http=HTTP, **kw))
    daemons.append(d)
    started = d.wait_event("http_started")
    return d, f"http://127.0.0.1:{started['port']}"


def point(link: Path, target: Path) -> None:
    """Re-point the symlink `link` at `target` in one atomic rename."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    fresh.replace(link)


def test_top_in_a_terminal_moves_shows_an_open_breaker_and_quits_on_q(
    tmp_path: Path, daemons: list[DaemonProcess], tmux: Tmux
) -> None:
    real_dir = tmp_path / "out"
    real_dir.mkdir()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the sink's parent is a regular file while this test says so\n")
    link = tmp_path / "sink"
    link.symlink_to(real_dir)
    d, base = start_daemon(
        tmp_path, daemons, sink_path=link / "readings.jsonl", sink={"rotate_bytes": 32768}
    )
    dash = top(tmp_path, base, "dash")
    win = tmux.run("dash", dash.command)

    first = wait_for(
        lambda: tmux.screen(win),
        lambda s: (read_total(s) or 0) > 0 and "sinks[0]" in s,  # drawn to the last table
        "a dashboard",
    )
    assert "ingestd top" in first and "stages[0]" in first and "threshold_filter" in first
    assert re.search(r"sinks\[0\]\s+jsonl\s+closed", first), first
    assert "read/s" in first  # the rate history
    before = read_total(first)
    moved = wait_for(
        lambda: tmux.screen(win),
        lambda s: (read_total(s) or 0) > (before or 0),
        "the read total to move",
    )
    assert re.search(r"read\s+[\d,]+\s+[1-9][\d,]*/s", moved), moved  # a rate, not 0/s

    point(link, blocker)  # the sink's next reopen fails: retries, then the breaker opens
    broken = wait_for(
        lambda: tmux.screen(win),
        lambda s: re.search(r"sinks\[0\]\s+jsonl\s+(open|half_open)", s) is not None,
        "the breaker to show open",
    )
    assert "UNHEALTHY" in broken or "spooled" in broken
    point(link, real_dir)

    tmux.tmux("send-keys", "-t", win, "q")
    assert dash.exit_status() == 0
    assert dash.stderr.read_text() == ""  # no traceback, nothing at all
    assert d.proc.poll() is None  # top only reads: the daemon runs on


def test_ctrl_c_ends_top_without_a_traceback(
    tmp_path: Path, daemons: list[DaemonProcess], tmux: Tmux
) -> None:
    _, base = start_daemon(tmp_path, daemons)
    ctrlc = top(tmp_path, base, "ctrlc")
    win = tmux.run("ctrlc", ctrlc.command)
    wait_for(lambda: tmux.screen(win), lambda s: "sinks[0]" in s, "a dashboard")
    tmux.tmux("send-keys", "-t", win, "C-c")
    assert ctrlc.exit_status() == 0  # Ctrl-C is a way out, not a failure
    assert ctrlc.stderr.read_text() == ""


def test_top_without_a_terminal_prints_plain_lines(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    d, base = start_daemon(tmp_path, daemons)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "top", "--url", base, "--count", "3", "--interval", "0.5"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # no terminal control codes in a pipe
    summaries = [line for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert len(summaries) == 3
    reads = [plain_total(s, "read") for s in summaries]
    assert reads[0] < reads[1] < reads[2], summaries
    assert all(re.search(r"written [\d,]+ \([\d,]+/s\)", s) for s in summaries)
    assert re.search(r"read [\d,]+ \([1-9][\d,]*/s\)", summaries[-1]), summaries[-1]
    assert done.stdout.count("  stage stages[") == 3 * 3
    assert done.stdout.count("  source sources[0] simulated") == 3
    assert done.stdout.count("  sink sinks[0] jsonl breaker closed") == 3
    d.signal(signal.SIGTERM)
    assert d.finish() == 0


def test_top_says_when_nothing_answers(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "top", "--url", f"127.0.0.1:{port}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 69
    assert done.stdout == ""
    assert f"cannot reach http://127.0.0.1:{port}/status: connection refused" in done.stderr
    assert "[daemon.http] enabled = true" in done.stderr
    assert "Traceback" not in done.stderr
