"""The daemon as systemd meets it: sd_notify on a socket the test binds, SIGHUP reloads (valid
and invalid), and the real logrotate rotating its log file."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles, write_config
from tests.e2e.notifysock import NotifySocket

pytestmark = pytest.mark.e2e


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_notify_protocol_and_reloads(
    tmp_path: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(tmp_path, sensors=20, rate_hz=100, max_readings=0)
    d = DaemonProcess(cfg, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
    daemons.append(d)
    ready = notify.wait_for("READY=1")

    # WATCHDOG=1 every WATCHDOG_USEC/2 = 0.5 s while the loop is healthy
    first_ping = notify.wait_for("WATCHDOG=1", after=ready)
    notify.wait_for("WATCHDOG=1", after=first_ping + 6)
    pings = [t for t, m in notify.messages[ready:] if "WATCHDOG=1" in m]
    interval = statistics.median(b - a for a, b in itertools.pairwise(pings))
    assert 0.35 < interval < 0.75, interval
    assert any("STATUS=" in m for _, m in notify.messages)

    # an invalid config on SIGHUP: logged with the key, the daemon keeps running the old one
    good = cfg.read_text()
    cfg.write_text(good.replace("window = 10", "window = 0"))
    mark = len(notify.messages)
    d.signal(signal.SIGHUP)
    failed = d.wait_event("config_reload_failed")
    assert failed["errors"] == ["stages[2].window: must be >= 1, got 0"]
    notify.wait_for("READY=1", after=mark)
    written_before = d.wait_for(lambda e: e.get("event") == "pipeline_health")["counters"]
    d.wait_for(
        lambda e: (
            e.get("event") == "pipeline_health"
            and e["counters"]["written"] > written_before["written"]
        )
    )

    # a valid change: RELOADING=1 with MONOTONIC_USEC, then READY=1; the new sink path is used
    cfg.write_text(good.replace(str(tmp_path / "out.jsonl"), str(tmp_path / "after.jsonl")))
    mark = len(notify.messages)
    d.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", after=mark)
    assert "MONOTONIC_USEC=" in notify.messages[reloading][1]
    notify.wait_for("READY=1", after=reloading)
    reloaded = d.wait_event("config_reloaded")
    assert reloaded["changed"] == ["sinks[0]"]
    d.wait_for(
        lambda e: (
            e.get("event") == "pipeline_health"
            and (tmp_path / "after.jsonl").exists()
            and (tmp_path / "after.jsonl").stat().st_size > 0
        )
    )

    mark = len(notify.messages)
    d.signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1", after=mark)
    assert d.finish(timeout=25) == 0, d.stderr
    c = d.counters()
    before = readings(read_rows(tmp_path / "out.jsonl"))
    after = readings(read_rows(tmp_path / "after.jsonl"))
    assert before and after
    keys = {(r["sensor_id"], r["seq"]) for r in before + after}
    assert len(keys) == len(before) + len(after), "a reading was written twice across a reload"
    assert c["written"] == len(before) + len(after)
    assert reconciles(c), c
    # the sensors carried on across the rebuild: each sensor's seqs have no gap beyond filtering
    for sensor in {r["sensor_id"] for r in after}:
        seqs = sorted(s for sid, s in keys if sid == sensor)
        assert seqs[-1] - seqs[0] + 1 >= len(seqs)


def test_logrotate_then_sighup_loses_and_duplicates_no_event(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(logrotate).exists():
        pytest.skip("logrotate is not installed (scripts/system-deps.sh installs it)")
    logs = tmp_path / "logs"
    log_file = logs / "ingestd.log"
    cfg = write_config(
        tmp_path,
        sensors=5,
        rate_hz=50,
        max_readings=0,
        health_interval_s=0.05,
    )
    cfg.write_text(cfg.read_text().replace('log_level = "info"', f'log_file = "{log_file}"'))
    d = DaemonProcess(cfg)
    daemons.append(d)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        f"{logs}/*.log {{\n  rotate 5\n  missingok\n  create 0640\n"
        f"  postrotate\n    kill -HUP {d.proc.pid}\n  endscript\n}}\n"
    )

    def reports_in(path: Path) -> list[int]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [e["report"] for e in map(json.loads, lines) if e["event"] == "pipeline_health"]

    for _ in range(2):
        _wait_until(lambda: len(reports_in(log_file)) >= 5, d)
        proc = subprocess.run(
            [logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert (logs / "ingestd.log.1").exists()
    _wait_until(lambda: len(reports_in(log_file)) >= 5, d)
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=25) == 0, d.stderr
    files = [logs / "ingestd.log.2", logs / "ingestd.log.1", log_file]
    per_file = [reports_in(f) for f in files]
    assert all(per_file), [len(r) for r in per_file]
    everything = [n for reports in per_file for n in reports]
    assert everything == list(range(1, len(everything) + 1)), "an event lost or repeated"
    for f in files:
        for line in f.read_text().splitlines():
            json.loads(line)  # no line torn across files


def _wait_until(condition: Callable[[], bool], d: DaemonProcess, timeout: float = 20.0) -> None:
    """Poll a file-based condition, bounded, while making sure the daemon is still alive."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert d.proc.poll() is None, f"daemon exited: {d.stderr[-500:]}"
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_reload_turns_on_http_health_live_without_rebuilding(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(tmp_path, sensors=5, rate_hz=100, max_readings=0)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    cfg.write_text(
        cfg.read_text().replace(
            "[[sources]]", "[daemon.http]\nenabled = true\nport = 0\n\n[[sources]]", 1
        )
    )
    d.signal(signal.SIGHUP)
    started = d.wait_event("http_started")
    reloaded = d.wait_event("config_reloaded")
    assert reloaded["changed"] == ["daemon"]
    assert reloaded["rebuilt"] is False
    with urllib.request.urlopen(f"http://127.0.0.1:{started['port']}/healthz", timeout=5) as r:
        assert r.status == 200
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=25) == 0, d.stderr
    assert reconciles(d.counters())
