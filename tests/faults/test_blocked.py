"""A sink write that blocks forever (a FIFO nobody reads) cannot hold the daemon: the write's
deadline spools the data, SIGTERM ends the daemon on time, and the stuck thread is left."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.daemonproc import DaemonProcess, reconciles, write_config

pytestmark = pytest.mark.e2e


def test_a_sink_blocked_in_a_fifo_is_spooled_around_and_sigterm_exits_on_time(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    fifo = tmp_path / "nobody-reads.jsonl"
    os.mkfifo(fifo)
    cfg = write_config(
        tmp_path,
        sensors=10,
        rate_hz=200,
        max_readings=0,
        shutdown_timeout_s=2,
        sink_path=fifo,
        sink={"write_timeout_s": 0.5, "encode_ahead": False},
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["spooled"] > 0)
    d.signal(signal.SIGTERM)
    sent = time.monotonic()
    code = d.finish(timeout=30)
    took = time.monotonic() - sent
    assert code == 0, d.stderr
    # the drain deadline (2 s), the forced grace (5 s at most), one second for threads
    assert took < 2 + 5 + 1 + 2, f"exit took {took:.1f} s"
    c = d.counters()
    assert reconciles(c), c
    assert c["written"] == 0 and c["spooled"] > 0
    names = {e["event"] for e in d.events}
    assert "breaker_state_changed" in names
