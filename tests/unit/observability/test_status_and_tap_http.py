"""`/status` and `/tap` served on a real port, read by real clients (urllib, http.client and
`ingestd tap` itself), with the tap points fed by the test as the data path would feed them."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.batch import Batch
from daemon.config.loader import HttpConfig
from daemon.observability.health import HealthReporter, StageStats
from daemon.observability.http import HealthServer
from daemon.observability.looplag import LoopLagMonitor
from daemon.runtime import RunState
from daemon.tools.tap import run_tap


@dataclass
class FakePipeline:
    """What `/status` and `/tap` read of a real pipeline, set by the test."""

    stage_stats: dict[str, StageStats] = field(default_factory=dict)
    sink_stats: dict[str, StageStats] = field(default_factory=dict)
    queue_depth: int = 0

    def component_types(self) -> dict[str, str]:
        return {"stages[0]": "normalize", "sinks[0]": "jsonl", "sources[0]": "mqtt"}


@dataclass
class Served:
    server: HealthServer
    state: RunState
    pipeline: FakePipeline

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    state = RunState.fresh(str(tmp_path / "dead-letter.jsonl"))
    reporter = HealthReporter(state, LoopLagMonitor())
    pipeline = FakePipeline({"stages[0]": StageStats()}, {"sinks[0]": StageStats()}, 3)
    reporter.attach(pipeline)
    server = HealthServer(HttpConfig(enabled=True, port=0), reporter)
    await server.start()
    yield Served(server, state, pipeline)
    await server.stop()


def batch(n: int, start: int = 0) -> Batch:
    return Batch.of_sensor(
        "HTTPTAP", np.arange(start, start + n), 1.7e9 + np.arange(n), np.full(n, 21.5)
    )


async def until(condition: Callable[[], bool], what: str, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def tap_args(base: str, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(
        url=base,
        at=kw.get("at"),
        kind=kw.get("kind"),
        limit=kw.get("limit"),
        sample=kw.get("sample", 1.0),
    )


async def status(base: str) -> dict[str, Any]:
    def get() -> dict[str, Any]:
        with urllib.request.urlopen(base + "/status", timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc

    return await asyncio.to_thread(get)


async def test_status_reports_counters_stages_sources_and_sinks(served: Served) -> None:
    state, pipeline = served.state, served.pipeline
    state.counters.read, state.counters.written, state.counters.spooled = 100, 60, 40
    pipeline.stage_stats["stages[0]"].record(100, 100, 0.002)
    pipeline.sink_stats["sinks[0]"].record(60, 60, 0.030)
    state.gauges["sources[0]"] = {"connected": False, "reconnects": 2}
    state.gauges["sinks[0]"] = {
        "breaker": "open",
        "open_since": time.monotonic() - 3.0,
        "spool_pending": 40,
        "spool_bytes": 4096,
        "file_bytes": 10,
    }
    doc = await status(served.base)
    assert doc["totals"] | {"read": 100, "written": 60, "spooled": 40} == doc["totals"]
    assert doc["totals"]["in_flight"] == 0
    [stage] = doc["stages"]
    assert (stage["label"], stage["type"], stage["in"], stage["out"]) == (
        "stages[0]",
        "normalize",
        100,
        100,
    )
    assert stage["p99_ms"] == pytest.approx(2.0)
    assert doc["sources"] == [
        {"label": "sources[0]", "type": "mqtt", "gauges": {"connected": False, "reconnects": 2}}
    ]
    [sink] = doc["sinks"]
    assert sink["breaker"] == "open" and sink["open_for_s"] >= 3.0
    assert (sink["spool_pending"], sink["spool_bytes"]) == (40, 4096)
    assert sink["write_p50_ms"] == pytest.approx(30.0)
    assert sink["gauges"] == {"file_bytes": 10}
    assert doc["queues"] == {"sources": 3}
    assert set(doc["loop_lag_ms"]) == {"p50", "p99", "max"}
    assert doc["taps"] == {"attached": [], "sent": 0, "dropped": 0}
    # the rates are over the time since the start: positive where the totals are
    assert doc["rates"]["read"] > 0 and doc["rates"]["rejected"] == 0


async def test_tap_with_a_limit_prints_exactly_that_many_records(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.BytesIO()
    client = asyncio.create_task(
        asyncio.to_thread(run_tap, tap_args(served.base, at="stages[0]", limit=25), out)
    )
    point = served.state.taps.point("stages[0]")
    seq = 0
    deadline = time.monotonic() + 10
    while not client.done():  # the data path: a batch now and then, whoever listens
        assert time.monotonic() < deadline, "ingestd tap did not finish"
        point.offer(batch(10, seq)) if point.taps else None
        seq += 10
        await asyncio.sleep(0.005)
    assert await client == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 25
    assert all(r["kind"] == "reading" and r["sensor_id"] == "HTTPTAP" for r in records)
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + 25))  # consecutive: nothing lost in between
    assert "25 records from stages[0], 0 dropped" in capsys.readouterr().err
    await until(lambda: not served.state.taps.attached(), "the tap to detach")


async def test_tap_at_an_unknown_point_says_which_points_exist(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(run_tap, tap_args(served.base, at="stages[5]"), io.BytesIO())
    assert code == 64
    assert "no tap point 'stages[5]' (known: stages[0], sinks[0])" in capsys.readouterr().err


async def test_a_reader_that_does_not_read_costs_drops_not_waiting(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=5)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.request("GET", "/tap?at=sinks[0]")
    board = served.state.taps
    await until(lambda: board.sink_taps == 1, "the tap to attach")
    [tap] = board.attached()
    point = board.point("sinks[0]")
    offered = 0
    began = time.perf_counter()
    for i in range(200):  # 200,000 readings, ~25 MB of lines, to a reader that reads nothing
        point.offer(batch(1000, i * 1000))
        offered += 1000
        await asyncio.sleep(0)  # the writer runs between batches, as it would in the daemon
    offering_s = time.perf_counter() - began
    assert tap.dropped > 0
    assert tap.buffered <= tap.max_records
    assert tap.sent + tap.buffered + tap.dropped == offered  # every record accounted for
    assert offering_s < 10  # never blocked on the reader (a loose bound, not a timing test)
    doc = await status(served.base)
    assert doc["taps"]["attached"][0]["dropped"] == tap.dropped
    conn.close()
    await until(lambda: board.sink_taps == 0, "the hung-up tap to detach")
    assert board.describe()["dropped"] == tap.dropped


async def test_stopping_the_server_ends_a_tap_with_its_last_line(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.BytesIO()
    client = asyncio.create_task(asyncio.to_thread(run_tap, tap_args(served.base), out))
    await until(lambda: bool(served.state.taps.attached()), "the tap to attach")
    served.state.taps.point("stages[0]").offer(batch(3))
    await served.server.stop()
    assert await asyncio.wait_for(client, 10) == 0
    assert len(out.getvalue().splitlines()) == 3
    assert "3 records from stages[0], 0 dropped" in capsys.readouterr().err


async def test_a_stuck_reader_does_not_hold_the_server_at_stop(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=5)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.request("GET", "/tap?at=stages[0]")
    board = served.state.taps
    await until(lambda: bool(board.attached()), "the tap to attach")
    point = board.point("stages[0]")
    for i in range(100):  # enough that the writer is stuck in drain, waiting for the reader
        point.offer(batch(1000, i * 1000))
        await asyncio.sleep(0)
    began = time.monotonic()
    await served.server.stop()
    assert time.monotonic() - began < 5.0  # TAP_CLOSE_S, then the handler is cancelled
    assert not board.attached()
    conn.close()
