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

from daemon.batch import Batch
from daemon.components import Sink, SinkError
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.mqtt.config import MqttConfig
from daemon.sinks.mqtt.connection import Connection
from daemon.sinks.publish import Addresses, messages, percent_escaper

__all__ = ["MqttConfig", "MqttSink"]

ESCAPE = percent_escaper("/+#")  # and %, NUL, control characters: one topic level per value


class MqttSink(Sink[MqttConfig], name="mqtt"):
    """Publishes every reading and derived record as an MQTT message; QoS 1 waits for PUBACKs."""

    wants_wire_bytes = True  # the messages are cut from the batch's JSON lines

    def __init__(self, config: MqttConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._addresses = Addresses(config.topic, ESCAPE)
        self._client_id = config.client_id_for(ctx.label)
        self._connection: Connection | None = None
        self._gauge = ctx.gauge()
        self._gauge.update(messages=0, batches=0, connects=0)

    async def open(self) -> None:
        try:
            await self._connected()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    async def write(self, batch: Batch) -> None:
        records = messages(batch, self._addresses)
        if not records:
            return
        connection = await self._connected()
        try:
            await connection.publish(records)
        except BaseException:  # a failure or a cancelled write: that connection is spent
            self._drop()
            raise
        self._gauge["messages"] += len(records)
        self._gauge["batches"] += 1

    async def flush(self) -> None:
        """Nothing to do: `write` returns once the broker acknowledged every message."""

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
