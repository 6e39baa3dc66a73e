"""Run the real daemon as a process and watch it the way an operator would.

The harness learns everything from the daemon's own outputs, never from its internals: READY=1
arrives on a `$NOTIFY_SOCKET` we bind (the pipeline is open: pools warm, sinks open), the JSON
log lines on stdout carry `pipeline_health` every `health_interval_s` and `shutdown_complete`
with the counters and peak RSS. At each `pipeline_health` the harness also samples the CPU time
and RSS of the daemon's process tree from /proc. A scenario may pass `stop`, a predicate over
what has been seen so far; the first time it holds the daemon gets SIGTERM (so runs are ended by
events, never by sleeps), and the run continues until the daemon has drained and exited.

One thread, one `selectors` loop over the stdout pipe and the notify socket; lines are split by
hand from raw reads so a partial line never blocks.
"""

from __future__ import annotations

import datetime as dt
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.procstat import TreeUsage, tree_usage

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sample:
    """One `pipeline_health` event with the tree's usage when it arrived."""

    at: float  # daemon's wall-clock timestamp of the event
    health: dict[str, Any]
    usage: TreeUsage | None


@dataclass
class Observed:
    events: list[dict[str, Any]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    ready_at: float | None = None  # wall clock when READY=1 arrived
    ready_usage: TreeUsage | None = None  # the tree's usage then
    end_usage: TreeUsage | None = None  # ... and when shutdown_complete arrived
    stop_sent_at: float | None = None  # wall clock of our SIGTERM, if any
    started_at: float = 0.0
    exited_at: float = 0.0
    returncode: int | None = None

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events if e.get("event") == name]
        if not found:
            raise RuntimeError(f"the daemon logged no {name}")
        return found[-1]

    @property
    def since_ready_s(self) -> float:
        return 0.0 if self.ready_at is None else time.time() - self.ready_at


class DaemonFailed(RuntimeError):
    pass


def timestamp(event: dict[str, Any]) -> float:
    """A log event's own wall-clock time (epoch seconds)."""
    return dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def run_daemon(
    config_text: str,
    workdir: Path,
    *,
    stop: Callable[[Observed], bool] | None = None,
    timeout_s: float = 600.0,
) -> Observed:
    """Start `python -m daemon run` on `config_text`, watch it until it exits, return what was
    seen. Raises DaemonFailed on a non-zero exit or when `timeout_s` passes (it is killed)."""
    cfg = workdir / "bench.toml"
    cfg.write_text(config_text)
    with tempfile.TemporaryDirectory(prefix="ingestd-notify-") as sockdir:
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(Path(sockdir) / "notify"))
        env = {**os.environ, "NOTIFY_SOCKET": str(Path(sockdir) / "notify")}
        env.pop("WATCHDOG_USEC", None)
        stderr_path = workdir / "stderr.log"
        with stderr_path.open("wb") as stderr:
            seen = Observed(started_at=time.time())
            proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
                env=env,
            )
            try:
                _watch(proc, notify, seen, stop, timeout_s)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                notify.close()
            seen.exited_at = time.time()
            seen.returncode = proc.returncode
    if proc.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-1500:]
        raise DaemonFailed(f"daemon exited {proc.returncode}: {tail}")
    return seen


def _watch(
    proc: subprocess.Popen[bytes],
    notify: socket.socket,
    seen: Observed,
    stop: Callable[[Observed], bool] | None,
    timeout_s: float,
) -> None:
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    pending = b""
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ, "stdout")
        sel.register(notify, selectors.EVENT_READ, "notify")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DaemonFailed(f"no exit within {timeout_s:.0f} s")
            for key, _ in sel.select(timeout=min(left, 1.0)):
                if key.data == "notify":
                    message = notify.recv(4096)
                    if seen.ready_at is None and b"READY=1" in message.split(b"\n"):
                        seen.ready_at = time.time()
                        seen.ready_usage = tree_usage(proc.pid)
                    continue
                chunk = os.read(out_fd, 1 << 16)
                if not chunk:
                    return  # EOF: the daemon is gone
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.strip():
                        _on_event(proc, seen, _parse(line), stop)


def _parse(line: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    if isinstance(event, dict):
        return event
    return {"event": "not_json", "line": line.decode(errors="replace")}  # kept, not fatal


def _on_event(
    proc: subprocess.Popen[bytes],
    seen: Observed,
    event: dict[str, Any],
    stop: Callable[[Observed], bool] | None,
) -> None:
    seen.events.append(event)
    if event.get("event") == "pipeline_health":
        seen.samples.append(Sample(timestamp(event), event, tree_usage(proc.pid)))
    elif event.get("event") == "shutdown_complete":
        seen.end_usage = tree_usage(proc.pid)  # still there: it exits after this line
    if stop is not None and seen.stop_sent_at is None and stop(seen):
        seen.stop_sent_at = time.time()
        proc.send_signal(signal.SIGTERM)
