"""Run ingestd as users do: a process with real signals, files and JSON logs on stdout."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import configs
from benchmarks.configs import Table

Event = dict[str, Any]


def write_config(
    tmp: Path,
    *,
    sensors: int = 10,
    rate_hz: float = 1000.0,
    max_readings: int = 200,
    fault_rate: float = 0.0,
    sink_path: Path | None = None,
    spool_dir: Path | None = None,
    features: Table | None = None,
    id_prefix: str = "S",
    health_interval_s: float = 0.5,
    shutdown_timeout_s: float = 20.0,
    http: Table | None = None,
    sink: Table | None = None,
    more_sinks: Sequence[Table] = (),
) -> Path:
    """`tmp/ingestd.toml`, rendered by `benchmarks.configs`: simulated sensors through the
    default chain (plus `features`, a stage from `configs.features(...)`) into a jsonl sink with
    quick retries. `http` is the `[daemon.http]` table, `sink` adds or overrides the jsonl
    sink's keys, `more_sinks` come after it."""
    daemon: Table = {
        "log_level": "info",
        "shutdown_timeout_s": shutdown_timeout_s,
        "health_interval_s": health_interval_s,
        "dead_letter": str(tmp / "dead-letter.jsonl"),
        "state_dir": str(tmp / "ingestd-state"),
    }
    if http is not None:
        daemon["http"] = http
    source: Table = {
        "type": "simulated",
        "sensors": sensors,
        "rate_hz": rate_hz,
        "max_readings": max_readings,
        "anomaly_rate": 0.05,
        "fault_rate": fault_rate,
        "seed": 7,
        "id_prefix": id_prefix,
    }
    jsonl: Table = {
        "type": "jsonl",
        "path": str(sink_path or tmp / "out.jsonl"),
        "spool_dir": str(spool_dir or tmp / "spool"),
        "retry": {"attempts": 2, "base_delay_s": 0.01},
        "breaker": {"failure_threshold": 3, "reset_timeout_s": 0.5},
    }
    stages = configs.default_chain() + ([features] if features is not None else [])
    sinks = [jsonl | (sink or {}), *more_sinks]
    doc = {"daemon": daemon, "sources": [source], "stages": stages, "sinks": sinks}
    return configs.write(tmp / "ingestd.toml", doc)


class DaemonProcess:
    """`ingestd run -c CONFIG` in its own session; stdout parsed as JSON log events."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        # The daemon's own temporary files (multiprocessing's forkserver sockets, which a
        # SIGKILL leaves behind) go beside the test's config, never into the shared /tmp.
        scratch = config.parent / "tmpdir"
        scratch.mkdir(exist_ok=True)
        full_env = {**os.environ, "TMPDIR": str(scratch), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        self.events: list[Event] = []
        self.raw_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _take(self, timeout: float) -> str | None:
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self.raw_lines.append(line)
            if line.strip():
                self.events.append(json.loads(line))
        return line

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 20.0) -> Event:
        """Block until a log event satisfies `predicate` (the daemon's own signal of progress)."""
        for event in self.events:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._take(left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.strip() and predicate(self.events[-1]):
                return self.events[-1]
        raise AssertionError(
            f"no matching event within {timeout}s; last: {self.raw_lines[-5:]}; "
            f"stderr: {self._stderr_tail()}"
        )

    def wait_event(self, name: str, timeout: float = 20.0) -> Event:
        return self.wait_for(lambda e: e.get("event") == name, timeout)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for exit, collect the remaining log lines, return the exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        while True:
            try:
                if self._take(timeout=5.0) is None:
                    break
            except queue.Empty:
                break
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def _stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    @property
    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def counters(self) -> dict[str, int]:
        done = [e for e in self.events if e.get("event") == "shutdown_complete"]
        assert done, f"no shutdown_complete; last lines: {self.raw_lines[-5:]}"
        counters: dict[str, int] = done[-1]["counters"]
        return counters


def reconciles(c: dict[str, int]) -> bool:
    return c["read"] + c.get("replayed", 0) == (
        c["written"] + c["filtered"] + c["rejected"] + c["spooled"]
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of the sink file and its rotated siblings."""
    rows: list[dict[str, Any]] = []
    for p in sorted(path.parent.glob(path.name + "*")):
        rows.extend(json.loads(line) for line in p.read_text().splitlines() if line.strip())
    return rows


def readings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("kind") == "reading"]


def descendants(pid: int) -> list[int]:
    """Every live descendant pid of `pid`, from /proc."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                frontier.append(child)
    return found
