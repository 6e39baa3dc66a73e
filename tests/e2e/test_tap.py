"""`ingestd tap` against a running daemon: records at a stage and at a sink are the records
flowing there, and a reader that stops reading loses records (counted, and said on its stderr)
while the pipeline keeps its pace.

The slow reader is a real `ingestd tap` whose stdout pipe the test does not read: once the pipe
is full the tap blocks on writing, stops reading its socket, the daemon's bounded buffer for it
fills, and from then on the daemon drops what that tap would have had. What the test asserts is
that the daemon kept writing (its `written` total grew) all the while, not how fast.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import configs
from tests.e2e.daemonproc import DaemonProcess, write_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HTTP = {"enabled": True, "host": "127.0.0.1", "port": 0}


def start(tmp: Path, daemons: list[DaemonProcess], **kw: Any) -> tuple[DaemonProcess, str]:
    cfg = write_config(tmp, max_readings=0, http=HTTP, **kw)
    d = DaemonProcess(cfg)
    daemons.append(d)
    port = d.wait_event("http_started")["port"]
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    return d, f"http://127.0.0.1:{port}"


def tap(base: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "tap", "--url", base, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def status(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/status", timeout=5) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


def poll(probe: Callable[[], Any], ok: Callable[[Any], bool], what: str, t: float = 30) -> Any:
    deadline = time.monotonic() + t
    while True:
        value = probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"
        time.sleep(0.05)


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def is_iso(ts: str) -> bool:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).tzinfo is not None


def test_tap_at_a_stage_and_at_a_sink_prints_the_records_flowing_there(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    features = configs.features(window=16, workers=0)
    d, base = start(tmp_path, daemons, sensors=5, rate_hz=500, features=features)

    normalized = tap(base, "--at", "stages[1]", "--limit", "40")
    assert normalized.returncode == 0, normalized.stderr
    got = records(normalized.stdout)
    assert len(got) == 40
    for r in got:  # after normalize, before moving_average
        assert r["kind"] == "reading" and r["sensor_id"].startswith("S")
        assert is_iso(r["ts"]) and isinstance(r["seq"], int)
        assert 0.0 <= r["normalized"] <= 1.0 and "moving_avg" not in r
    assert "40 records from stages[1], 0 dropped" in normalized.stderr

    delivered = tap(base, "--at", "sinks[0]", "--limit", "30", "--kind", "reading")
    assert delivered.returncode == 0, delivered.stderr
    got = records(delivered.stdout)
    assert len(got) == 30
    assert all(r["kind"] == "reading" and "moving_avg" in r for r in got)
    by_sensor: dict[str, list[int]] = {}
    for r in got:
        by_sensor.setdefault(r["sensor_id"], []).append(r["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_sensor.values())  # each sensor in order

    windows = tap(base, "--at", "sinks[0]", "--kind", "features", "--limit", "3")
    assert windows.returncode == 0, windows.stderr
    got = records(windows.stdout)
    assert len(got) == 3 and all(r["kind"] == "features" for r in got)

    unknown = tap(base, "--at", "stages[9]")
    assert unknown.returncode == 64
    assert "no tap point 'stages[9]' (known: stages[0], stages[1], stages[2], stages[3]" in (
        unknown.stderr
    )
    assert not status(base)["taps"]["attached"]  # every tap above detached when it ended
    d.signal(signal.SIGTERM)
    assert d.finish() == 0


def test_a_reader_that_stops_reading_has_drops_counted_and_the_pipeline_keeps_moving(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    d, base = start(tmp_path, daemons, sensors=20, rate_hz=1000)
    reader = subprocess.Popen(
        [sys.executable, "-m", "daemon", "tap", "--url", base, "--at", "stages[0]"],
        stdout=subprocess.PIPE,  # never read until the end: the pipe fills, the tap blocks
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        first = poll(
            lambda: status(base),
            lambda s: bool(s["taps"]["attached"]) and s["taps"]["attached"][0]["dropped"] > 0,
            "the stuck tap to drop records",
        )
        stuck = first["taps"]["attached"][0]
        assert stuck["buffered"] <= 10_000  # bounded, whatever the reader does
        later = poll(
            lambda: status(base),
            lambda s: (
                s["totals"]["written"] > first["totals"]["written"] + 20_000
                and s["taps"]["attached"][0]["dropped"] > stuck["dropped"]
            ),
            "the pipeline to keep writing while the tap drops",
        )
        assert later["totals"]["in_flight"] < 20_000  # nothing piles up behind the tap
        assert later["health"]["status"] == "ok"
        # the reader reads again: it hears of the drops, and Ctrl-C ends it with a summary
        assert reader.stdout is not None
        drained = threading.Thread(target=reader.stdout.read, daemon=True)
        drained.start()
        assert reader.stderr is not None
        told = reader.stderr.readline().decode()
        assert "records dropped so far at stages[0]" in told, told
        reader.send_signal(signal.SIGINT)
        assert reader.wait(timeout=20) == 0
        summary = reader.stderr.read().decode()
        assert "Traceback" not in summary
        sent, dropped = _summary(summary)
        assert sent > 0 and dropped >= stuck["dropped"]
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    poll(lambda: status(base), lambda s: not s["taps"]["attached"], "the tap to detach")
    assert status(base)["taps"]["dropped"] >= dropped
    d.signal(signal.SIGTERM)
    assert d.finish() == 0


def _summary(text: str) -> tuple[int, int]:
    """(records, dropped) of the client's last line: 'N records from AT, M dropped'."""
    last = [line for line in text.splitlines() if " records from " in line][-1]
    words = last.replace(",", "").split()
    return int(words[2]), int(words[-2])


def test_tap_says_when_nothing_answers() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = tap(f"127.0.0.1:{port}", "--limit", "1")
    assert done.returncode == 69
    assert "connection refused" in done.stderr and "[daemon.http]" in done.stderr
    assert done.stdout == ""
