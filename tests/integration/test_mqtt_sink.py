"""The `mqtt` sink against real brokers: the machine's Mosquitto on 1883 (a unique topic prefix
per test) and a private one for what stops the broker. Every record is checked as a subscriber
received it, never inferred from the sink."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.components import SinkError
from daemon.config import parse_config
from daemon.config.mqtt import TlsConfig
from daemon.runtime import RunState
from daemon.sinks.mqtt import MqttConfig, MqttSink
from daemon.topology.pipeline import Pipeline
from tests.brokers.mosquitto import Mosquitto, free_port
from tests.mqtt_support import Subscriber
from tests.support import TestContext

pytestmark = pytest.mark.server("mqtt")
PORT = 1883


@pytest.fixture
def prefix() -> str:
    return f"ingestd-test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def subscribed(prefix: str) -> Iterator[Subscriber]:
    sub = Subscriber(PORT, f"{prefix}/#")
    yield sub
    sub.close()


def batch_of(sensors: list[str], per_sensor: int, first: int = 0) -> Batch:
    seq = np.arange(first, first + per_sensor)
    return Batch.concat(
        [Batch.of_sensor(s, seq, 1.7e9 + seq, seq * 0.5, unit="degC") for s in sensors]
    )


def sink(url: str, topic: str, **keys: Any) -> MqttSink:
    return MqttSink(MqttConfig(url=url, topic=topic, **keys), TestContext("sinks[0]", "/dev/null"))


async def until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within_s}s")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("qos", [1, 0])
async def test_every_reading_and_derived_record_is_one_message(
    prefix: str, subscribed: Subscriber, qos: int
) -> None:
    sensors = ["M-1", "hall/2", "x+y#"]  # one topic level each, whatever the id holds
    out = sink(f"mqtt://127.0.0.1:{PORT}", prefix + "/{kind}/{sensor_id}", qos=qos)
    await out.open()
    first = batch_of(sensors, 400)
    first.derived = [{"kind": "alert", "sensor_id": "hall/2", "state": "firing", "rule": "hot"}]
    await out.write(first)
    await out.write(batch_of(sensors, 400, first=400))
    await out.close()
    got = subscribed.wait_for(2 * 1200 + 1)
    readings = [(t, json.loads(p)) for t, p in got if json.loads(p)["kind"] == "reading"]
    for sensor, topic in zip(sensors, ["M-1", "hall%2F2", "x%2By%23"], strict=True):
        mine = [r for t, r in readings if t == f"{prefix}/reading/{topic}"]
        assert [r["seq"] for r in mine] == list(range(800))  # all of them, in order
        assert {r["sensor_id"] for r in mine} == {sensor}
    assert len(readings) == 2400
    (alert,) = [(t, json.loads(p)) for t, p in got if json.loads(p)["kind"] == "alert"]
    assert alert == (f"{prefix}/alert/hall%2F2", first.derived[0])
    assert out.ctx.gauge()["messages"] == 2401


async def test_a_broker_down_at_open_fails_writes_until_it_answers(tmp_path: Path) -> None:
    port = free_port()
    out = sink(f"mqtt://127.0.0.1:{port}", "t/{sensor_id}", connect_timeout_s=2.0)
    with capture_logs() as logs:
        await out.open()
    assert [e["event"] for e in logs if e["event"] == "sink_open_failed"] == ["sink_open_failed"]
    began = time.monotonic()
    with pytest.raises(SinkError, match="cannot connect"):
        await out.write(batch_of(["M-1"], 3))
    assert time.monotonic() - began < 2.0  # refused at once, not a timeout
    await out.close()


async def test_a_disconnect_mid_batch_raises_and_the_next_write_reconnects(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path, tuned=False)
    sub = Subscriber(broker.port, "mid/#")
    try:
        out = sink(broker.url, "mid/{sensor_id}", max_inflight=50)
        await out.open()
        writing = asyncio.create_task(out.write(batch_of(["M-1", "M-2"], 30_000)))
        await until(lambda: sub.count() >= 500, 10, "500 messages at the subscriber")
        assert not writing.done()  # mid-batch: far from its 60,000 PUBACKs
        broker.stop()
        with pytest.raises(SinkError, match=r"disconnected|closed"):
            await asyncio.wait_for(writing, 5)
        sub.close()
        broker.start()
        sub = Subscriber(broker.port, "mid/#")
        await out.write(batch_of(["M-3"], 10))  # a fresh connection
        assert [json.loads(p)["seq"] for _, p in sub.wait_for(10)] == list(range(10))
        assert out.ctx.gauge()["connects"] == 2
        await out.close()
    finally:
        sub.close()
        broker.stop()


async def test_alerts_go_to_mqtt_while_readings_go_to_a_file(
    tmp_path: Path, prefix: str, subscribed: Subscriber
) -> None:
    lines = ["sensor_id,seq,ts,value,unit"]
    for seq in range(120):
        value = 95.0 if 40 <= seq < 80 else 50.0  # fires at 40, resolves at 80
        lines.append(f"Q1,{seq},2026-11-21T22:{seq // 60:02d}:{seq % 60:02d}Z,{value},degC")
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    config = parse_config(f"""
[daemon]
dead_letter = "{tmp_path / "dead.jsonl"}"
state_dir = "{tmp_path / "state"}"

[[sources]]
type = "file"
path = "{tmp_path / "in.csv"}"
max_batch = 16

[[stages]]
type = "threshold_alert"
on = "value"
above = 90.0
clear_at = 85.0
rule = "hot"

[[sinks]]
type = "jsonl"
path = "{tmp_path / "readings.jsonl"}"
spool_dir = "{tmp_path / "spool-0"}"
kinds = ["reading"]

[[sinks]]
type = "mqtt"
url = "mqtt://127.0.0.1:{PORT}"
topic = "{prefix}/{{kind}}/{{sensor_id}}"
spool_dir = "{tmp_path / "spool-1"}"
kinds = ["alert"]
""")
    state = RunState.fresh(config.daemon.dead_letter, config.daemon.state_dir)
    await Pipeline(config, state).run()
    alerts = [(t, json.loads(p)) for t, p in subscribed.wait_for(2)]
    assert [(t, a["state"]) for t, a in alerts] == [
        (f"{prefix}/alert/Q1", "firing"),
        (f"{prefix}/alert/Q1", "resolved"),
    ]
    readings = (tmp_path / "readings.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in readings] == list(range(120))
    assert state.counters.written == 120 and state.counters.reconciles()
    assert subscribed.count() == 2  # no reading went to the broker


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=ingestd-test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.cnf",
    )
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


async def test_mqtts_verifies_the_broker_by_the_configured_ca(tmp_path: Path) -> None:
    ca, cert, key = certificates(tmp_path / "tls")
    tls = {"cafile": str(ca), "certfile": str(cert), "keyfile": str(key)}
    broker = Mosquitto(tmp_path, tuned=False, extra=tls)  # its one listener speaks TLS
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        trusting = sink(url, "tls/{sensor_id}", tls=TlsConfig(ca_file=str(ca)))
        await trusting.write(batch_of(["T-1"], 20))  # returns once all 20 were PUBACKed
        assert trusting.ctx.gauge()["messages"] == 20
        await trusting.close()
        doubting = sink(url, "tls/{sensor_id}")  # the system's CAs do not know this one
        with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
            await doubting.write(batch_of(["T-1"], 1))
        await doubting.close()
    finally:
        broker.stop()
