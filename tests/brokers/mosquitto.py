"""Private Mosquitto brokers for tests: `Mosquitto(tmp_path, tuned=...)`, stopped at teardown.

The broker itself is `benchmarks.mosquitto.Mosquitto` (the benchmarks start the same brokers;
see its docstring for what `tuned` sets and why). Use the fixtures: `mosquitto` is a tuned
broker, `mosquitto_factory(tuned=False)` starts more (each in its own directory), and every one
started is stopped after the test, whatever it did.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarks.mosquitto import MOSQUITTO, TUNED_SETTINGS, Mosquitto, free_port

__all__ = [
    "MOSQUITTO",
    "TUNED_SETTINGS",
    "Mosquitto",
    "forget_session",
    "free_port",
    "mosquitto",
    "mosquitto_factory",
    "publish",
]

Factory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Factory]:
    """`make(tuned=True, extra=None)`: a new private broker in `tmp_path/broker-<n>`."""
    started: list[Mosquitto] = []

    def make(*, tuned: bool = True, extra: dict[str, str] | None = None) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker-{len(started)}", tuned=tuned, extra=extra)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Factory) -> Mosquitto:
    """A tuned private broker (see `benchmarks.mosquitto`)."""
    return mosquitto_factory(tuned=True)


def publish(port: int, messages: Iterable[tuple[str, bytes | str]], *, qos: int = 1) -> int:
    """Publish `(topic, payload)` pairs in order with a real client (paho, its own network
    thread) and return once the broker acknowledged every one (QoS 1); how many were sent."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:12]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
            if not info.is_published():
                raise TimeoutError(f"message {info.mid} was not acknowledged by the broker")
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(port: int, client_id: str) -> None:
    """Make the broker drop `client_id`'s persistent session (and what it holds): connect with
    clean start and a Session Expiry Interval of 0, then disconnect. For tests that leave
    sessions on a shared broker."""
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = lambda *_: done.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    try:
        if not done.wait(timeout=10):
            raise TimeoutError(f"no CONNACK for {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
