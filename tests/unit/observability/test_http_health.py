"""/metrics and /healthz served on a real port, scraped by a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config.loader import HttpConfig
from daemon.observability.health import HealthReporter, StageStats
from daemon.observability.http import HealthServer
from daemon.observability.looplag import LoopLagMonitor
from daemon.runtime import RunState


@dataclass
class FakePipeline:
    stage_stats: dict[str, StageStats] = field(default_factory=dict)
    queue_depth: int = 0


@dataclass
class Served:
    server: HealthServer
    state: RunState
    lag: LoopLagMonitor
    stats: StageStats

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    state = RunState.fresh(str(tmp_path / "dead-letter.jsonl"))
    lag = LoopLagMonitor()
    stats = StageStats()
    reporter = HealthReporter(state, lag)
    reporter.attach(FakePipeline({"stages[0]": stats}, queue_depth=4))
    config = HttpConfig(enabled=True, port=0, stale_after_s=60.0, breaker_open_max_s=30.0)
    server = HealthServer(config, reporter, loop_stall_s=5.0)
    await server.start()
    yield Served(server, state, lag, stats)
    await server.stop()


def get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read()


async def fetch(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    return await asyncio.to_thread(get, url, method)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_port_zero_binds_a_free_port(served: Served) -> None:
    assert served.server.port > 0


async def test_metrics_reflect_the_live_objects_at_scrape_time(served: Served) -> None:
    c = served.state.counters
    c.read, c.written, c.filtered, c.spooled, c.features = 1000, 900, 60, 30, 4
    served.stats.record(1000, 940, 0.003)
    served.state.gauges["sinks[0]"] = {
        "breaker": "open",
        "open_since": time.monotonic() - 12.0,
        "spool_pending": 30,
        "spool_bytes": 2048,
        "spool_batches": 2,
    }
    served.state.gauges["stages[3]"] = {"pending": 1, "workers": 2}
    served.lag.record(0.004)

    status, ctype, body = await fetch(served.base + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    m = samples(body.decode())
    assert m[("ingestd_read_total", ())] == 1000
    assert m[("ingestd_written_total", ())] == 900
    assert m[("ingestd_features_total", ())] == 4
    assert m[("ingestd_in_flight_readings", ())] == 10
    assert m[("ingestd_stage_readings_in_total", (("stage", "stages[0]"),))] == 1000
    assert m[("ingestd_stage_readings_out_total", (("stage", "stages[0]"),))] == 940
    assert m[
        ("ingestd_stage_latency_seconds", (("quantile", "0.99"), ("stage", "stages[0]")))
    ] == pytest.approx(0.003)
    assert m[("ingestd_queue_depth_batches", (("queue", "sources"),))] == 4
    assert m[("ingestd_sink_breaker_state", (("sink", "sinks[0]"), ("state", "open")))] == 1
    assert m[("ingestd_sink_breaker_state", (("sink", "sinks[0]"), ("state", "closed")))] == 0
    assert m[("ingestd_sink_breaker_not_closed_seconds", (("sink", "sinks[0]"),))] >= 12
    assert m[("ingestd_sink_spool_bytes", (("sink", "sinks[0]"),))] == 2048
    assert m[("ingestd_sink_spool_pending_readings", (("sink", "sinks[0]"),))] == 30
    assert m[("ingestd_component_gauge", (("component", "stages[3]"), ("name", "workers")))] == 2
    assert m[("ingestd_component_gauge", (("component", "sinks[0]"), ("name", "spool_batches")))]
    assert m[("ingestd_event_loop_lag_seconds", (("quantile", "1"),))] == pytest.approx(0.004)
    assert ("ingestd_readings_per_second", (("direction", "written"),)) in m
    assert m[("process_resident_memory_bytes", ())] > 0

    c.written = 990  # the next scrape reads the objects again
    m = samples((await fetch(served.base + "/metrics"))[2].decode())
    assert m[("ingestd_written_total", ())] == 990


async def test_healthz_is_ok_while_data_flows(served: Served) -> None:
    served.state.counters.written = 5
    status, ctype, body = await fetch(served.base + "/healthz")
    assert (status, ctype, json.loads(body)) == (200, "application/json", {"status": "ok"})


async def test_healthz_is_503_with_reasons_when_a_breaker_stays_open(served: Served) -> None:
    served.state.gauges["sinks[0]"] = {"breaker": "open", "open_since": time.monotonic() - 31}
    status, _, body = await fetch(served.base + "/healthz")
    assert status == 503
    doc = json.loads(body)
    assert doc["status"] == "unhealthy"
    assert doc["reasons"][0].startswith("sinks[0] breaker not closed for 31")


async def test_healthz_is_503_when_the_loop_is_stalled(served: Served) -> None:
    served.lag.record(7.0)
    status, _, body = await fetch(served.base + "/healthz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["event loop stalled (lag >= 5 s)"]


async def test_unknown_paths_methods_and_garbage_get_4xx(served: Served) -> None:
    assert (await fetch(served.base + "/nope"))[0] == 404
    assert (await fetch(served.base + "/metrics", method="POST"))[0] == 405
    status, _, body = await fetch(served.base + "/healthz?verbose=1", method="HEAD")
    assert (status, body) == (200, b"")

    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_after_stop_the_port_is_closed(tmp_path: Path) -> None:
    state = RunState.fresh(str(tmp_path / "dl.jsonl"))
    server = HealthServer(HttpConfig(enabled=True, port=0), HealthReporter(state))
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(RuntimeError):
        _ = server.port
