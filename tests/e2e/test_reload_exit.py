"""The daemon as a process: SIGTERM while a reload drains the old pipeline ends the daemon at
that drain, with everything delivered, and never builds the next generation."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles, write_config

pytestmark = pytest.mark.e2e

# A second sink paced at 300,000 readings/s: a full queue (64 batches of 8,192) takes ~2 s to
# drain, so the SIGTERM below lands inside the reload's drain, well before the 4 s deadline.
PACED = {"type": "blackhole", "max_per_s": 300000}


def test_sigterm_during_a_reload_drain_exits_at_the_drain_with_nothing_spooled(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cfg = write_config(
        tmp_path,
        sensors=1000,
        rate_hz=1_000_000,
        max_readings=0,
        shutdown_timeout_s=4,
        more_sinks=[PACED | {"spool_dir": str(tmp_path / "spool-paced")}],
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] > 0)
    cfg.write_text(cfg.read_text().replace("window = 50", "window = 60"))  # rebuilds stages
    d.signal(signal.SIGHUP)
    d.wait_for(lambda e: e.get("event") == "pipeline_stopping" and e["reason"] == "reload")
    d.signal(signal.SIGTERM)
    sent = time.monotonic()
    assert d.finish(timeout=30) == 0, d.stderr
    took = time.monotonic() - sent
    assert took < 4.0, f"exited after {took:.2f} s: the deadline, not the drain"
    names = [e["event"] for e in d.events]
    assert "shutdown_timeout" not in names and "config_reloaded" not in names
    (done,) = [e for e in d.events if e["event"] == "shutdown_complete"]
    assert done["generations"] == 1, "the next generation must not be built"
    c = d.counters()
    assert c["spooled"] == 0, c
    assert reconciles(c), c
    assert c["written"] == len(readings(read_rows(tmp_path / "out.jsonl")))
    phases = [e for e in d.events if e["event"] == "shutdown_phase"]
    assert [p["phase"] for p in phases] == ["stop_sources", "drain_stages", "flush_sinks", "close"]
    assert not any(p["forced"] for p in phases)
