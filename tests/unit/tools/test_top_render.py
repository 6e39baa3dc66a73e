"""`ingestd top`'s arithmetic and both of its views, from `/status` documents built here."""

from __future__ import annotations

import copy
from typing import Any

from rich.console import Console

from daemon.tools.rates import SPARKS, RateTracker, sparkline
from daemon.tools.topview import dashboard, plain_lines, size


def status(at: float, read: int, written: int, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "monotonic_s": at,
        "time": 1.7e9 + at,
        "uptime_s": at,
        "health": {"status": "ok", "reasons": []},
        "totals": {
            "read": read,
            "written": written,
            "filtered": read - written,
            "rejected": 0,
            "spooled": 0,
            "replayed": 0,
            "unspooled": 0,
            "in_flight": 0,
        },
        "rates": {"read": 7.0, "written": 7.0},
        "stages": [
            {
                "label": "stages[0]",
                "type": "threshold_filter",
                "in": read,
                "out": written,
                "batches": 3,
                "in_per_s": 0.0,
                "out_per_s": 0.0,
                "p50_ms": 0.05,
                "p99_ms": 0.25,
            }
        ],
        "sources": [
            {"label": "sources[0]", "type": "mqtt", "gauges": {"connected": True, "lag": 3}}
        ],
        "sinks": [
            {
                "label": "sinks[0]",
                "type": "jsonl",
                "breaker": "closed",
                "open_for_s": 0.0,
                "spool_pending": 0,
                "spool_bytes": 0,
                "write_p50_ms": 1.25,
                "write_p99_ms": 9.5,
                "gauges": {},
            }
        ],
        "queues": {"sources": 2},
        "loop_lag_ms": {"p50": 0.2, "p99": 1.5, "max": 3.0},
        "e2e_latency_ms": {"p50": 10.0, "p99": 80.0, "max": 90.0, "readings": 5},
        "rss_mb": 61.5,
        "taps": {"attached": [], "sent": 0, "dropped": 0},
    }
    doc.update(over)
    return doc


def render(renderable: Any) -> str:
    console = Console(record=True, width=140, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rates_come_from_successive_polls_over_the_daemons_clock() -> None:
    tracker = RateTracker()
    first = tracker.update(status(10.0, 1000, 900))
    assert first.interval_s is None and first.rates["read"] == 7.0  # the daemon's own rates
    second = tracker.update(status(12.0, 3000, 2500))
    assert second.interval_s == 2.0
    assert second.rates["read"] == 1000.0 and second.rates["written"] == 800.0
    assert second.stage_rates["stages[0]"] == (1000.0, 800.0)
    assert second.history["read"] == [7.0, 1000.0]
    # a restarted daemon's totals fall: counted from zero, never a negative rate
    third = tracker.update(status(13.0, 500, 400))
    assert third.rates["read"] == 500.0


def test_sparkline_scales_to_the_maximum() -> None:
    assert sparkline([0.0, 5.0, 10.0]) == SPARKS[0] + SPARKS[4] + SPARKS[7]
    assert sparkline([0.0, 0.0]) == SPARKS[0] * 2
    assert sparkline([1.0] * 100, width=10) == SPARKS[7] * 10


def test_plain_lines_carry_every_section() -> None:
    tracker = RateTracker()
    tracker.update(status(10.0, 1000, 900))
    text = "\n".join(plain_lines(tracker.update(status(11.0, 2000, 1800))))
    assert "read 2,000 (1,000/s) written 1,800 (900/s)" in text
    assert "queue sources=2" in text and "loop lag p50 0.20ms p99 1.50ms" in text
    assert "stage stages[0] threshold_filter in 1,000/s out 900/s p50 0.05ms p99 0.25ms" in text
    assert "source sources[0] mqtt connected=yes lag=3" in text
    assert "sink sinks[0] jsonl breaker closed spool 0 readings 0 B" in text
    assert "health ok" in text


def test_the_dashboard_shows_an_open_breaker_a_lost_source_and_the_taps() -> None:
    doc = status(5.0, 100, 100)
    sink = doc["sinks"][0]
    sink.update(breaker="open", open_for_s=75.0, spool_pending=1234, spool_bytes=3 * 2**20)
    doc["sources"][0]["gauges"]["connected"] = False
    doc["health"] = {"status": "unhealthy", "reasons": ["sinks[0] breaker not closed"]}
    doc["taps"] = {
        "attached": [
            {"at": "stages[0]", "kind": None, "sample": 0.5, "sent": 10, "dropped": 4, "id": 1}
        ],
        "sent": 10,
        "dropped": 4,
    }
    tracker = RateTracker()
    tracker.update(copy.deepcopy(doc))
    text = render(dashboard(tracker.update(doc | {"monotonic_s": 6.0}), "http://x:1"))
    assert "open 1m15s" in text
    assert "1,234" in text and "3.0 MiB" in text
    assert "DISCONNECTED" in text
    assert "UNHEALTHY: sinks[0] breaker not closed" in text
    assert "stages[0]" in text and "0.5" in text
    assert "read/s" in text and SPARKS[0] in text


def test_the_dashboard_says_when_the_daemon_was_lost() -> None:
    frame = RateTracker().update(status(1.0, 1, 1))
    text = render(dashboard(frame, "http://x:1", "lost the daemon: connection refused"))
    assert "lost the daemon: connection refused" in text


def test_sizes_read_as_people_write_them() -> None:
    assert [size(0), size(1023), size(1536), size(5 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
    ]
