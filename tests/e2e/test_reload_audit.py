"""The reload audit trail, from the daemon as a process: each SIGHUP after an edit logs every
changed key with its old and new value, then `config_reloaded` with the list of those keys."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e.daemonproc import DaemonProcess, Event, write_config

pytestmark = pytest.mark.e2e


def audit(d: DaemonProcess, reloaded: Event) -> list[tuple[str, object, object]]:
    """The `config_key_changed` events logged just before `reloaded`, as (key, old, new)."""
    at = d.events.index(reloaded)
    before = []
    for event in reversed(d.events[:at]):
        if event["event"] != "config_key_changed":
            break
        before.append((event["key"], event["old"], event["new"]))
    return before[::-1]


def test_each_reload_logs_every_changed_key_old_to_new(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(tmp_path, sensors=5, rate_hz=50, max_readings=0, health_interval_s=0.5)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)

    write_config(tmp_path, sensors=5, rate_hz=50, max_readings=0, health_interval_s=0.25)
    d.signal(signal.SIGHUP)
    first = d.wait_event("config_reloaded")
    assert audit(d, first) == [("daemon.health_interval_s", 0.5, 0.25)]
    assert first["keys"] == ["daemon.health_interval_s"] and first["changed"] == ["daemon"]
    assert first["rebuilt"] is False

    text = cfg.read_text()
    assert text.count("window = 50") == 1 and text.count("attempts = 2") == 1
    cfg.write_text(
        text.replace("window = 50", "window = 60").replace("attempts = 2", "attempts = 4")
    )
    d.signal(signal.SIGHUP)
    second = d.wait_for(lambda e: e.get("event") == "config_reloaded" and e is not first)
    assert audit(d, second) == [
        ("stages[1].window", 50, 60),
        ("sinks[0].retry.attempts", 2, 4),
    ]
    assert second["keys"] == ["stages[1].window", "sinks[0].retry.attempts"]
    assert second["changed"] == ["stages[1]", "sinks[0]"] and second["rebuilt"] is True

    cfg.write_text(cfg.read_text())  # unchanged: a reload that changes nothing says so
    d.signal(signal.SIGHUP)
    third = d.wait_for(
        lambda e: e.get("event") == "config_reloaded" and e is not first and e is not second
    )
    assert audit(d, third) == [] and third["keys"] == [] and third["changed"] == []

    d.signal(signal.SIGTERM)
    assert d.finish(timeout=30) == 0, d.stderr
