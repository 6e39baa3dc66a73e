"""A test's MQTT subscriber: a paho client on its own thread, subscribed before anything is
published, collecting what arrives (topic, payload) for the test to wait on."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Subscriber:
    """A paho client on its own thread, subscribed (SUBACKed) to `topic`.

    At QoS 0 on purpose: Mosquitto's defaults (like the machine's broker) keep at most 20 QoS 1
    messages in flight and 1000 queued per subscriber and drop the rest for one that lags —
    and a subscriber in the publishing process lags. QoS 0 to an online subscriber is written
    out without that cap. What the sink sent at QoS 1 was acknowledged by the broker all the
    same; this only checks the broker then had every message."""

    def __init__(self, port: int, topic: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
        client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client
        assert self._subscribed.wait(5), "no SUBACK"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._changed:
            self.received.append((message.topic, message.payload))
            self._changed.notify_all()

    def count(self) -> int:
        with self._changed:
            return len(self.received)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, bytes]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= n, timeout_s):
                raise AssertionError(f"{len(self.received)} of {n} messages within {timeout_s}s")
            return list(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
