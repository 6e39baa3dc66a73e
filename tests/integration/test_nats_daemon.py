"""The daemon as a process with the `nats` source: bad payloads, SIGKILL and restart into
PostgreSQL exactly once, two daemons sharing one durable, a NATS server restarted mid-run.

What "exactly once" is checked against: the published (sensor_id, seq) set and count equal what
is in the table. Redeliveries after a kill are expected (at-least-once); the postgres sink's
key makes them land once."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from benchmarks import configs
from tests.brokers.nats import NatsServer, connect, delete_stream, publish_all, reading, unique_name
from tests.e2e.daemonproc import DaemonProcess, read_rows, readings, reconciles

URL = "nats://127.0.0.1:4222"
DSN = "postgresql://postgres@127.0.0.1:5432/test"
SENSORS = 50


def messages(subject: str, start: int, stop: int) -> list[tuple[str, bytes]]:
    """One reading a message, seq i for sensor N{i % SENSORS}."""
    return [
        (f"{subject}.{i % SENSORS}", reading(f"N{i % SENSORS}", i, float(i)))
        for i in range(start, stop)
    ]


def expected(start: int, stop: int) -> set[tuple[str, int]]:
    return {(f"N{i % SENSORS}", i) for i in range(start, stop)}


def publish(url: str, items: list[tuple[str, bytes]]) -> None:
    async def go() -> None:
        nc = await connect(url)
        try:
            await publish_all(nc.jetstream(), items)
        finally:
            await nc.close()

    asyncio.run(go())


def consumer_state(url: str, stream: str, durable: str) -> tuple[int, int]:
    """(num_pending, num_ack_pending) as the server sees them."""

    async def go() -> tuple[int, int]:
        nc = await connect(url)
        try:
            info = await nc.jetstream().consumer_info(stream, durable)
            return int(info.num_pending or 0), int(info.num_ack_pending or 0)
        finally:
            await nc.close()

    return asyncio.run(go())


def query(sql: str) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(DSN)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def eventually(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s}s")
        time.sleep(0.05)


def daemon_config(
    tmp: Path, name: str, source: dict[str, Any], sink: dict[str, Any], tag: str = "d"
) -> Path:
    doc = {
        "daemon": {
            "dead_letter": str(tmp / f"dead-letter-{tag}.jsonl"),
            "state_dir": str(tmp / f"state-{tag}"),
            "health_interval_s": 0.25,
        },
        "sources": [source],
        "sinks": [sink | {"spool_dir": str(tmp / f"spool-{tag}")}],
    }
    return configs.write(tmp / f"{name}-{tag}.toml", doc)


def nats_source(url: str, stream: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "nats",
        "url": url,
        "stream": stream,
        "subjects": [f"{stream.lower()}.>"],
        "durable": "ingestd",
        "reconnect_wait_s": 0.1,
    } | more


def started(daemons: list[DaemonProcess], config: Path) -> DaemonProcess:
    d = DaemonProcess(config)
    daemons.append(d)
    d.wait_event("source_bound", timeout=20)  # the stream and the consumer exist
    return d


@pytest.fixture
def stream() -> Iterator[str]:
    name = unique_name("D")
    yield name
    asyncio.run(delete_stream(URL, name))


@pytest.fixture
def table() -> Iterator[str]:
    name = f"nats_{uuid.uuid4().hex[:10]}"
    yield name
    query(configs.drop_postgres_tables(name))


def postgres_sink(table: str) -> dict[str, Any]:
    return configs.postgres_sink(DSN, table)


def in_table(table: str) -> list[tuple[str, int]]:
    return [(r["sensor_id"], r["seq"]) for r in query(f'SELECT sensor_id, seq FROM "{table}"')]


@pytest.mark.server("nats")
def test_bad_payloads_are_dead_lettered_good_ones_flow_and_all_are_acked(
    tmp_path: Path, daemons: list[DaemonProcess], stream: str
) -> None:
    out = tmp_path / "out.jsonl"
    cfg = daemon_config(
        tmp_path,
        "bad",
        nats_source(URL, stream, max_payload_bytes=500),
        {"type": "jsonl", "path": str(out)},
    )
    d = started(daemons, cfg)
    subj = stream.lower()
    bad = [
        (f"{subj}.json", b"{oops"),
        (f"{subj}.big", reading("B", 1, pad="y" * 600)),
        (f"{subj}.type", b'{"sensor_id": "T", "seq": 1, "value": true}'),
        (f"{subj}.missing", b'{"sensor_id": "M", "value": 1, "ts": "yesterday"}'),
        (f"{subj}.array", b'[{"sensor_id": "A", "seq": 7, "value": 1}, 5]'),
    ]
    publish(URL, messages(subj, 0, 100) + bad + messages(subj, 100, 200))
    d.wait_for(lambda e: e.get("event") == "pipeline_health" and e["counters"]["written"] >= 201)
    eventually(lambda: consumer_state(URL, stream, "ingestd") == (0, 0), 10, "all acked")
    assert d.proc.poll() is None  # still running
    d.signal(signal.SIGTERM)
    assert d.finish() == 0, d.stderr
    c = d.counters()
    assert reconciles(c) and c["rejected"] == 5 and c["written"] == 201
    got = {(r["sensor_id"], r["seq"]) for r in readings(read_rows(out))}
    assert got == expected(0, 200) | {("A", 7)}
    lines = (tmp_path / "dead-letter-d.jsonl").read_text().splitlines()
    dead = {json.loads(x)["subject"].rsplit(".", 1)[-1]: json.loads(x) for x in lines}
    assert set(dead) == {"json", "big", "type", "missing", "array"}
    assert all(x["reason"] for x in dead.values())


class Publisher(threading.Thread):
    """Publishes `total` messages in chunks while the test does other things (a daemon killed
    mid-stream must be killed while the stream is still coming). A chunk that fails (the
    server is being restarted) is published again: the stream may then hold a message twice,
    which the table's key absorbs like any redelivery."""

    def __init__(self, url: str, subject: str, total: int, chunk: int = 500) -> None:
        super().__init__(daemon=True)
        self.url, self.subject, self.total, self.chunk = url, subject, total, chunk
        self.sent = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        start = 0
        while start < self.total:
            stop = min(start + self.chunk, self.total)
            try:
                publish(self.url, messages(self.subject, start, stop))
            except (OSError, nats.errors.Error) as exc:
                if time.monotonic() > deadline:
                    self.error = exc
                    return
                self.retries += 1
                time.sleep(0.1)  # a backoff before trying the chunk again
                continue
            self.sent = start = stop

    def finished(self, within_s: float = 60) -> None:
        self.join(within_s)
        assert self.error is None and self.sent == self.total, (self.error, self.sent)


@pytest.mark.server("nats")
@pytest.mark.server("postgres")
def test_sigkill_mid_stream_then_restart_lands_every_reading_once(
    tmp_path: Path, daemons: list[DaemonProcess], stream: str, table: str
) -> None:
    total = 30_000
    cfg = daemon_config(
        tmp_path, "kill", nats_source(URL, stream, ack_wait_s=1.0, batch=200), postgres_sink(table)
    )
    first = started(daemons, cfg)
    publisher = Publisher(URL, stream.lower(), total)
    publisher.start()
    eventually(lambda: len(in_table(table)) >= 2000, 30, "some readings in PostgreSQL")
    first.kill()  # SIGKILL to the process group, while messages are still being published
    assert publisher.sent < total, "the stream was over before the kill: not mid-stream"

    second = started(daemons, cfg)  # the same durable: the unacked are redelivered
    publisher.finished()
    eventually(lambda: len(in_table(table)) >= total, 60, "every reading in PostgreSQL")
    eventually(lambda: consumer_state(URL, stream, "ingestd") == (0, 0), 20, "all acked")
    second.signal(signal.SIGTERM)
    assert second.finish() == 0, second.stderr
    assert reconciles(second.counters())
    rows = in_table(table)
    assert len(rows) == total and set(rows) == expected(0, total)


@pytest.mark.server("nats")
def test_two_daemons_on_one_durable_share_the_stream(
    tmp_path: Path, daemons: list[DaemonProcess], stream: str
) -> None:
    total = 20_000
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    pair = [
        started(
            daemons,
            daemon_config(
                tmp_path,
                "pair",
                nats_source(URL, stream, batch=100),
                {"type": "jsonl", "path": str(out)},
                tag,
            ),
        )
        for out, tag in zip(outs, "ab", strict=True)
    ]
    publish(URL, messages(stream.lower(), 0, total))
    eventually(lambda: consumer_state(URL, stream, "ingestd") == (0, 0), 60, "all taken")
    for d in pair:
        d.signal(signal.SIGTERM)
    for d in pair:
        assert d.finish() == 0, json.dumps([e for e in d.events if e.get("level") == "error"])
        assert reconciles(d.counters())
    shares = [[(r["sensor_id"], r["seq"]) for r in readings(read_rows(out))] for out in outs]
    union = shares[0] + shares[1]
    assert len(union) == total and set(union) == expected(0, total)  # none twice, none missing
    assert all(len(share) > 0 for share in shares), [len(s) for s in shares]


@pytest.mark.server("postgres")
def test_a_nats_server_restart_mid_run_loses_nothing(
    tmp_path: Path, daemons: list[DaemonProcess], table: str
) -> None:
    total = 30_000
    with NatsServer(tmp_path) as server:
        source = nats_source(server.url, "RESTART", batch=200, ack_wait_s=2.0)
        d = started(daemons, daemon_config(tmp_path, "restart", source, postgres_sink(table)))
        publisher = Publisher(server.url, "restart", total)
        publisher.start()
        eventually(lambda: len(in_table(table)) >= 2000, 30, "some readings in PostgreSQL")
        server.restart()
        assert publisher.sent < total, "the stream was over before the restart: not mid-run"
        d.wait_for(lambda e: e.get("event") == "source_connected" and bool(e.get("reconnect")), 20)
        publisher.finished()
        eventually(lambda: len(in_table(table)) >= total, 60, "every reading in PostgreSQL")
        eventually(lambda: consumer_state(server.url, "RESTART", "ingestd") == (0, 0), 20, "acked")
        d.signal(signal.SIGTERM)
        assert d.finish() == 0, d.stderr
    assert d.proc.returncode == 0 and reconciles(d.counters())
    assert any(e.get("event") == "source_disconnected" for e in d.events)
    rows = in_table(table)
    assert len(rows) == total and set(rows) == expected(0, total)
