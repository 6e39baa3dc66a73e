"""The daemon as a process with the `mqtt` source, against private Mosquitto brokers (tuned:
`benchmarks.mosquitto`), publishing with real clients (mosquitto_pub -l, paho): bad payloads,
withheld acks across SIGKILL, 100,000 readings into PostgreSQL exactly once, a restart after
SIGKILL, two daemons on one shared subscription, and a broker restart mid-run."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from benchmarks import configs
from benchmarks.mqtt_ingest import publish as publish_files
from benchmarks.mqtt_ingest import write_payloads
from tests.brokers.mosquitto import Mosquitto, mosquitto, mosquitto_factory, publish
from tests.e2e.daemonproc import DaemonProcess, Event, read_rows, readings, reconciles

__all__ = ["mosquitto", "mosquitto_factory"]  # fixtures, used by name

pytestmark = [pytest.mark.server("mqtt"), pytest.mark.e2e]

DSN = "postgresql://postgres@127.0.0.1:5432/test"
Key = tuple[str, int]


def expected_keys(messages: int) -> set[Key]:
    """The (sensor_id, seq) of `write_payloads(..., messages, 1)`: m<i % 1000>, i // 1000."""
    return {(f"m{i % 1000}", i // 1000) for i in range(messages)}


class Run:
    """One test's topic, client ids and config files."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.tmp = tmp_path
        self.broker = broker
        self.tag = uuid.uuid4().hex[:10]
        self.topic = f"ingestd-test/{self.tag}"

    def config(
        self, name: str, sinks: list[dict[str, Any]], *, stages: bool = True, **source: Any
    ) -> Path:
        work = self.tmp / name
        work.mkdir(exist_ok=True)
        doc = {
            "daemon": {
                "log_level": "info",
                "health_interval_s": 0.2,
                "shutdown_timeout_s": 20,
                "dead_letter": str(work / "dead-letter.jsonl"),
                "state_dir": str(work / "state"),
            },
            "sources": [
                {
                    "type": "mqtt",
                    "url": self.broker.url,
                    "topics": [f"{self.topic}/#"],
                    "client_id": f"ingestd-test-{self.tag}",
                    "reconnect_max_s": 0.5,
                    **source,
                }
            ],
            "stages": configs.default_chain() if stages else [],
            "sinks": sinks,
        }
        return configs.write(work / "ingestd.toml", doc)

    def jsonl(self, name: str) -> dict[str, Any]:
        return {
            "type": "jsonl",
            "path": str(self.tmp / name / "out.jsonl"),
            "spool_dir": str(self.tmp / name / "spool"),
        }


def counters(event: Event) -> dict[str, int]:
    found: dict[str, int] = event["counters"]
    return found


def health(
    d: DaemonProcess,
    check: Callable[[dict[str, int], dict[str, Any]], bool] = lambda c, g: True,
    timeout_s: float = 60.0,
) -> Event:
    """Wait for the next `pipeline_health` (logged from now on) whose counters and source
    gauges satisfy `check`."""
    start = len(d.events)
    index = iter(range(1 << 62))  # wait_for offers the events in order, the logged ones first

    def matches(e: Event) -> bool:
        if next(index) < start or e.get("event") != "pipeline_health":
            return False
        return check(counters(e), e.get("gauges", {}).get("sources[0]", {}))

    return d.wait_for(matches, timeout=timeout_s)


def subscribed(d: DaemonProcess) -> None:
    d.wait_event("source_subscribed", timeout=20)


def written_keys(path: Path) -> list[Key]:
    return [(r["sensor_id"], r["seq"]) for r in readings(read_rows(path))]


@pytest.fixture
def run(tmp_path: Path, mosquitto: Mosquitto) -> Run:
    return Run(tmp_path, mosquitto)


@pytest.fixture
async def table() -> AsyncIterator[str]:
    name = f"mqtt_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(configs.drop_postgres_tables(name))
    finally:
        await conn.close()


def postgres(run: Run, table: str) -> dict[str, Any]:
    return configs.postgres_sink(
        DSN,
        table,
        spool_dir=str(run.tmp / f"spool-{uuid.uuid4().hex[:6]}"),
        retry={"attempts": 2, "base_delay_s": 0.01},
    )


async def rows_in(table: str) -> tuple[int, set[Key]]:
    conn = await asyncpg.connect(DSN)
    try:
        got = await conn.fetch(f'SELECT sensor_id, seq FROM "{table}"')
    finally:
        await conn.close()
    return len(got), {(r["sensor_id"], r["seq"]) for r in got}


@pytest.fixture
def publishers() -> Iterator[Callable[[Callable[[], object]], threading.Thread]]:
    """Run a publishing function in the background; joined at teardown."""
    threads: list[threading.Thread] = []

    def start(fn: Callable[[], object]) -> threading.Thread:
        thread = threading.Thread(target=fn, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=60)


# -- payloads ---------------------------------------------------------------------------------
def test_malformed_payloads_are_dead_lettered_and_the_daemon_keeps_running(
    run: Run, daemons: list[DaemonProcess]
) -> None:
    d = DaemonProcess(run.config("a", [run.jsonl("a")], stages=False, max_payload_bytes=300))
    daemons.append(d)
    subscribed(d)
    t = run.topic
    bad: list[tuple[str, bytes | str]] = [
        (f"{t}/big", b'{"sensor_id": "x", "value": 1, "pad": "' + b"x" * 400 + b'"}'),
        (f"{t}/text", b"hello"),
        (f"{t}/binary", b"\x00\xff\xfe"),
        (f"{t}/scalar", b"true"),
        (f"{t}/missing", b'{"value": 1.0}'),
        (f"{t}/type", b'{"sensor_id": "x", "seq": 1, "value": [1]}'),
        (f"{t}/inf", b'{"sensor_id": "x", "seq": 1, "value": Infinity}'),
        (f"{t}/mixed", b'[{"sensor_id": "G", "seq": 1, "value": 2.0}, {"sensor_id": 5}]'),
    ]
    publish(run.broker.port, bad)
    health(d, lambda c, _: c["rejected"] == 8 and c["written"] == 1)
    publish(run.broker.port, [(f"{t}/ok", json.dumps({"sensor_id": "G", "seq": 2, "value": 3}))])
    health(d, lambda c, _: c["written"] == 2)  # still running, still taking
    d.signal(signal.SIGTERM)
    assert d.finish() == 0
    c = d.counters()
    assert reconciles(c) and (c["read"], c["written"], c["rejected"]) == (10, 2, 8), c
    assert written_keys(run.tmp / "a" / "out.jsonl") == [("G", 1), ("G", 2)]
    letters = [
        json.loads(x) for x in (run.tmp / "a" / "dead-letter.jsonl").read_text().split("\n") if x
    ]
    topics = {entry["topic"].rsplit("/", 1)[-1] for entry in letters}
    assert topics == {"big", "text", "binary", "scalar", "missing", "type", "inf", "mixed"}
    assert all(entry["reason"] and entry["source"] == "sources[0]" for entry in letters)


# -- acks and restarts ------------------------------------------------------------------------
def test_acks_withheld_by_a_blocked_sink_mean_redelivery_after_sigkill(
    run: Run, daemons: list[DaemonProcess]
) -> None:
    """A sink that takes ~forever: the daemon reads every message but none is taken, so none
    is acknowledged; killed, the next daemon (same session) gets every one of them again."""
    slow = {"type": "blackhole", "max_per_s": 1.0, "spool_dir": str(run.tmp / "slow-spool")}
    first = DaemonProcess(run.config("slow", [slow], stages=False))
    daemons.append(first)
    subscribed(first)
    publish(
        run.broker.port,
        [(f"{run.topic}/x", f'{{"sensor_id": "K", "seq": {i}, "value": 1}}') for i in range(500)],
    )
    health(first, lambda c, g: g.get("messages_received") == 500 and g.get("unacked") == 500)
    first.kill()  # SIGKILL: nothing taken, nothing acknowledged

    second = DaemonProcess(run.config("fast", [run.jsonl("fast")], stages=False))
    daemons.append(second)
    health(second, lambda c, g: c["written"] >= 500 and g.get("unacked") == 0)
    second.signal(signal.SIGTERM)
    assert second.finish() == 0
    assert sorted(written_keys(run.tmp / "fast" / "out.jsonl")) == [("K", i) for i in range(500)]


@pytest.mark.server("postgres")
async def test_100k_readings_at_qos1_land_in_postgres_exactly_once(
    run: Run, table: str, daemons: list[DaemonProcess]
) -> None:
    """~10-20 s: 100,000 single-reading messages from two mosquitto_pub -l -q 1."""
    messages = 100_000
    files = write_payloads(run.tmp, messages, 1)
    d = DaemonProcess(run.config("pg", [postgres(run, table)]))
    daemons.append(d)
    subscribed(d)
    publish_files(run.broker.port, run.topic, files)
    health(d, lambda c, g: c["written"] == messages and g.get("unacked") == 0)
    d.signal(signal.SIGTERM)
    assert d.finish(timeout=60) == 0
    c = d.counters()
    assert reconciles(c) and (c["read"], c["written"], c["rejected"]) == (messages, messages, 0)
    count, keys = await rows_in(table)
    assert count == messages and keys == expected_keys(messages)


@pytest.mark.server("postgres")
async def test_sigkill_mid_stream_then_restart_lands_every_reading_once(
    run: Run,
    table: str,
    daemons: list[DaemonProcess],
    publishers: Callable[[Callable[[], object]], threading.Thread],
) -> None:
    messages = 40_000
    files = write_payloads(run.tmp, messages, 1)
    first = DaemonProcess(run.config("pg", [postgres(run, table)]))
    daemons.append(first)
    subscribed(first)
    publishing = publishers(lambda: publish_files(run.broker.port, run.topic, files))
    health(first, lambda c, _: c["written"] >= 5_000)
    first.kill()  # mid-stream: some written, some in flight, most still on the broker
    second = DaemonProcess(run.config("pg", [postgres(run, table)]))  # the same session
    daemons.append(second)
    publishing.join(timeout=60)
    want = expected_keys(messages)
    for _ in range(300):  # each turn waits for the daemon's next health report (0.2 s)
        count, keys = await rows_in(table)
        if keys == want:
            break
        health(second)
    assert keys == want
    second.signal(signal.SIGTERM)
    assert second.finish(timeout=60) == 0
    assert count == messages  # the table's key keeps a redelivered reading from landing twice
    assert reconciles(second.counters())


def test_two_daemons_on_one_shared_subscription_split_the_stream(
    run: Run, daemons: list[DaemonProcess]
) -> None:
    messages = 6_000
    files = write_payloads(run.tmp, messages, 1)
    pair = []
    for name in ("one", "two"):
        d = DaemonProcess(
            run.config(
                name,
                [run.jsonl(name)],
                shared_group=f"g{run.tag}",
                client_id=f"ingestd-{name}-{run.tag}",
            )
        )
        daemons.append(d)
        pair.append(d)
    for d in pair:
        subscribed(d)
    publish_files(run.broker.port, run.topic, files)
    written = [0, 0]
    for _ in range(300):  # each turn waits for both daemons' next health reports
        reports = [health(d) for d in pair]
        written = [counters(e)["written"] for e in reports]
        if sum(written) >= messages:
            break
    assert sum(written) == messages
    for d in pair:
        d.signal(signal.SIGTERM)
    for d in pair:
        assert d.finish() == 0 and reconciles(d.counters())
    one, two = (set(written_keys(run.tmp / n / "out.jsonl")) for n in ("one", "two"))
    assert one | two == expected_keys(messages)  # complete
    assert not one & two  # none twice
    assert one and two  # each got a share
    assert len(one) + len(two) == messages


def test_a_broker_restart_mid_run_loses_nothing_at_qos1(
    run: Run, daemons: list[DaemonProcess]
) -> None:
    messages = 20_000
    first_half = write_payloads(run.tmp, messages // 2, 1)
    d = DaemonProcess(run.config("r", [run.jsonl("r")]))
    daemons.append(d)
    subscribed(d)
    publish_files(run.broker.port, run.topic, first_half)
    run.broker.restart()  # held messages and the session survive in the broker's persistence
    d.wait_event("source_disconnected")
    d.wait_for(lambda e: e.get("event") == "source_connected" and e["session_present"])
    second_half: list[tuple[str, bytes | str]] = [
        (f"{run.topic}/b", json.dumps({"sensor_id": f"m{i % 1000}", "seq": i // 1000, "value": 50}))
        for i in range(messages // 2, messages)
    ]
    publish(run.broker.port, second_half)
    # Not `written >= messages`: the restart resends what was unacknowledged, and those copies
    # count too, so the count can reach `messages` before the last messages arrived.
    out, expected = run.tmp / "r" / "out.jsonl", expected_keys(messages)
    health(d, lambda c, g: g.get("unacked") == 0 and set(written_keys(out)) >= expected)
    d.signal(signal.SIGTERM)
    assert d.finish() == 0 and reconciles(d.counters())
    keys = written_keys(out)
    assert set(keys) == expected  # nothing lost (a resent copy may be twice)
    assert any(e.get("event") == "source_reconnecting" for e in d.events)
