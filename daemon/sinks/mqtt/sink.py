"""`mqtt`: each reading and derived record published as one MQTT message.

Guarantees, and why they hold:
- With `qos = 1`, `write()` returns only once the broker PUBACKed every message of the batch:
  then, and only then, the batch counts as written. A disconnect, a refused connection or a
  publish paho cannot queue mid-batch raises `SinkError`, so the guard (retry, breaker, spool)
  delivers the whole batch again. What the broker had acknowledged of the failed attempt is
  published again too: at-least-once, duplicates on the wire are the price of losing nothing
  (a reading's `(sensor_id, seq)` identifies a repeat). `qos = 0` is at-most-once: a batch
  counts as written once its messages are in the socket.
- The connection is driven by the event loop (`connection.py`, measured faster than paho's own
  thread); one connection per sink, opened at `open()` or at the first write after a failure,
  abandoned whole on any failure (never resumed with a half-sent batch in it).
- Topics come from the `topic` template; a sensor id with `/`, `+`, `#` or `%` is
  percent-encoded, so `{sensor_id}` is always exactly one topic level (`daemon/sinks/publish.py`).
- TLS: an `mqtts://` url, verified against `[sinks.tls] ca_file` (default: the system's CAs),
  with `cert_file`/`key_file` for a client certificate (the mqtt source's `tls` keys).
- A broker that is down never stops the daemon: `open()` logs it, writes raise `SinkError`
  until it answers (each connect bounded by `connect_timeout_s`).
"""

from __future__ import annotations

from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.mqtt.config import MqttConfig
from daemon.sinks.mqtt.connection import Connection
from daemon.sinks.publish import Addresses, PublishSink, percent_escaper

__all__ = ["MqttConfig", "MqttSink"]

ESCAPE = percent_escaper("/+#")  # and %, NUL, control characters: one topic level per value


class MqttSink(PublishSink[MqttConfig], name="mqtt"):
    """Publishes every reading and derived record as an MQTT message; QoS 1 waits for PUBACKs."""

    def __init__(self, config: MqttConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx, Addresses(config.topic, ESCAPE))
        self._client_id = config.client_id_for(ctx.label)
        self._connection: Connection | None = None

    async def _publish(self, connection: Connection, records: list[tuple[str, bytes]]) -> None:
        await connection.publish(records)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _connected(self) -> Connection:
        """The live connection, connecting first if there is none (SinkError if it fails)."""
        if self._connection is not None and self._connection.lost is None:
            return self._connection
        self._drop()
        connection = Connection(self.config, self._client_id)
        await connection.connect()
        self._connection = connection
        self._gauge["connects"] += 1
        self.ctx.log.info(
            events.SINK_CONNECTED,
            sink=self.ctx.label,
            broker=self.config.url,
            client_id=self._client_id,
        )
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abandon()
