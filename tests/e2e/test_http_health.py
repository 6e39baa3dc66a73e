"""`/metrics` and `/healthz` of the daemon as a process, over real HTTP, while its jsonl sink
works, fails and recovers.

How the sink is made to fail without racing the daemon: the sink path's parent is a symlink.
Pointing it (atomically: a new symlink renamed over the old one) at a regular file makes the
parent a regular file for every later open, and pointing it back at the directory repairs it. A
plain "move the directory away, put a file there" would leave an instant in which the sink's own
`mkdir(parents=True)` could recreate the directory. A file already open keeps working whatever
happens to its name, so the sink is given a small `rotate_bytes`: it reopens its path at every
rotation, and the first rotation after the swap fails, the retries run out, the breaker opens and
batches go to the spool. After the repair the sink opens the file lazily on the half-open probe,
the probe succeeds and the spool replays.

Everything waits by polling the endpoint (or the log) against a deadline; no sleep stands in
for an event.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles, write_config

pytestmark = pytest.mark.e2e

T = TypeVar("T")
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SINK = "sinks[0]"
STALE_AFTER_S = 1.0
BREAKER_OPEN_MAX_S = 0.5
HTTP = {
    "enabled": True,
    "host": "127.0.0.1",
    "port": 0,
    "stale_after_s": STALE_AFTER_S,
    "breaker_open_max_s": BREAKER_OPEN_MAX_S,
}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def scrape(base: str) -> Metrics:
    """Every sample of `/metrics`, parsed by prometheus_client's own text parser."""
    status, body = get(base + "/metrics")
    assert status == 200, body[:200]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    status, body = get(base + "/healthz")
    doc: dict[str, Any] = json.loads(body)
    return status, doc


def sink_sample(m: Metrics, name: str, **labels: str) -> float:
    return m[(name, tuple(sorted({"sink": SINK, **labels}.items())))]


def breaker(m: Metrics) -> str:
    """The breaker state whose one-hot sample is 1."""
    [state] = [
        s
        for s in ("closed", "open", "half_open")
        if sink_sample(m, "ingestd_sink_breaker_state", state=s)
    ]
    return state


def spool_bytes(m: Metrics) -> float:
    return sink_sample(m, "ingestd_sink_spool_bytes")


def spool_pending(m: Metrics) -> float:
    return sink_sample(m, "ingestd_sink_spool_pending_readings")


def counter(m: Metrics, name: str) -> float:
    return m[(f"ingestd_{name}_total", ())]


def poll(
    d: DaemonProcess,
    probe: Callable[[], T],
    until: Callable[[T], bool],
    what: str,
    timeout: float = 20.0,
) -> T:
    """Call `probe` until `until` accepts its result, bounded, checking the daemon is alive."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        assert d.proc.poll() is None, f"daemon exited while waiting for {what}: {d.stderr[-800:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"[:2000]
        time.sleep(0.05)


def point(link: Path, target: Path) -> None:
    """Re-point the symlink `link` at `target` in one atomic rename."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    fresh.replace(link)


def test_metrics_scraped_and_healthz_follows_a_failing_sink(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    real_dir = tmp_path / "out"
    real_dir.mkdir()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the sink's parent is a regular file while this test says so\n")
    link = tmp_path / "sink"
    link.symlink_to(real_dir)
    sink_path = link / "readings.jsonl"
    cfg = write_config(
        tmp_path,
        sensors=5,
        rate_hz=200,
        max_readings=0,
        sink_path=sink_path,
        http=HTTP,
        sink={"rotate_bytes": 32768},
    )
    d = DaemonProcess(cfg)
    daemons.append(d)
    started = d.wait_event("http_started")
    assert started["host"] == "127.0.0.1"
    base = f"http://127.0.0.1:{started['port']}"

    # healthy: data flows, /healthz is 200, the counters grow between two scrapes
    poll(d, lambda: healthz(base), lambda r: r == (200, {"status": "ok"}), "healthz 200")
    first = poll(d, lambda: scrape(base), lambda m: counter(m, "written") > 0, "first writes")
    assert breaker(first) == "closed"
    assert spool_bytes(first) == 0
    assert spool_pending(first) == 0
    lag = {q: first[("ingestd_event_loop_lag_seconds", (("quantile", q),))] for q in ("0.5", "1")}
    assert 0 <= lag["0.5"] <= lag["1"] < 5.0, lag
    assert first[("ingestd_stage_readings_in_total", (("stage", "stages[0]"),))] > 0
    # the rates are since the previous scrape: positive whenever the counters moved since it
    scrapes = [first]

    def next_scrape() -> Metrics:
        scrapes.append(scrape(base))
        return scrapes[-1]

    second = poll(
        d,
        next_scrape,
        lambda m: all(counter(m, c) > counter(scrapes[-2], c) for c in ("read", "written")),
        "counters to increase since the previous scrape",
    )
    for direction in ("read", "written"):
        assert second[("ingestd_readings_per_second", (("direction", direction),))] > 0

    # failing: the next rotation cannot reopen the path; the breaker opens, the spool fills
    point(link, blocker)
    _, doc = poll(d, lambda: healthz(base), lambda r: r[0] == 503, "healthz 503")
    assert doc["status"] == "unhealthy"
    assert any(r.startswith(f"{SINK} breaker not closed for") for r in doc["reasons"]), doc
    failing = poll(d, lambda: scrape(base), lambda m: spool_pending(m) > 0, "readings in the spool")
    assert breaker(failing) in ("open", "half_open")
    assert spool_bytes(failing) > 0
    assert sink_sample(failing, "ingestd_sink_breaker_not_closed_seconds") > 0
    poll(
        d,
        lambda: scrape(base),
        lambda m: (
            counter(m, "spooled") > counter(failing, "spooled")
            and counter(m, "read") > counter(failing, "read")
        ),
        "spooling to continue while the sink fails",
    )
    assert d.wait_for(lambda e: e.get("event") == "breaker_state_changed" and e["to"] == "open")

    # recovered: the probe reopens the file, the spool replays, /healthz is 200 again
    point(link, real_dir)
    poll(d, lambda: healthz(base), lambda r: r == (200, {"status": "ok"}), "healthz 200 again")
    drained = poll(
        d,
        lambda: scrape(base),
        lambda m: breaker(m) == "closed" and spool_pending(m) == 0 and spool_bytes(m) == 0,
        "the spool to drain",
    )
    assert counter(drained, "unspooled") > 0
    d.wait_for(lambda e: e.get("event") == "spool_replayed" and e["sink"] == SINK)
    d.wait_for(lambda e: e.get("event") == "breaker_state_changed" and e["to"] == "closed")

    d.signal(signal.SIGTERM)
    assert d.finish(timeout=25) == 0, d.stderr
    c = d.counters()
    assert reconciles(c), c
    assert c["spooled"] > 0
    assert c["unspooled"] == c["spooled"], "a spooled reading never left the spool"
    rows = readings(read_rows(sink_path))
    keys = {(r["sensor_id"], r["seq"]) for r in rows}
    assert len(keys) == len(rows), "a reading reached the file twice"
    assert len(rows) == c["written"] + c["unspooled"], "a reading is missing from the file"
