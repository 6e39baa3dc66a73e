"""One MQTT connection, driven by the event loop: paho's socket callbacks on loop readers/writers.

Why the event loop and not paho's own thread: measured with 10,000 QoS 1 messages to the local
Mosquitto (`python -m benchmarks.publish_sinks --drivers`), paho driven by loop readers and
writers published ~1.5-2x as many messages a second as `loop_start()` with futures resolved via
`call_soon_threadsafe`: paho is pure Python either way, and the thread only adds GIL hand-offs
and wake-ups. So paho's `loop_read`/`loop_write` run as the loop's reader and writer callbacks
of its socket, and `loop_misc` once a second (keepalive pings, a dead broker noticed).

Why our own window of `max_inflight` and not paho's: paho's limit keeps the excess in its queue
and rescans the whole queue on every PUBACK, O(n²) per batch (10,000 messages: 1 s of CPU in
`_update_inflight`). So paho's limit is off and this class hands paho at most `max_inflight`
unacknowledged messages, topping up after each read.

Only the blocking part of connecting (TCP connect and the TLS handshake, in `client.connect`)
runs in a thread, bounded by `connect_timeout_s`; the callbacks it triggers are passed to the
loop. A connection that failed in any way is abandoned whole, never reused: paho would resend
the unacknowledged messages of the failed batch on reconnect, and the guard resends the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from daemon.components import SinkError
from daemon.config.mqtt import TlsConfig
from daemon.sinks.mqtt.config import MqttConfig

KEEPALIVE_S = 30  # a PINGREQ after this long without traffic; no answer: disconnected
_MISC_S = 1.0
_CLOSE_S = 1.0  # close: how long the DISCONNECT may take to go out


class _Flight:
    """One batch's messages: how many are handed to paho, which await their PUBACK."""

    __slots__ = ("done", "messages", "sent", "unacked")

    def __init__(self, messages: Sequence[tuple[str, bytes]], done: asyncio.Future[None]) -> None:
        self.messages = messages
        self.done = done
        self.sent = 0
        self.unacked: set[int] = set()


class Connection:
    """A connected paho client on the running loop. `publish` returns once every message of
    it was acknowledged (QoS 1) or written to the socket (QoS 0); `SinkError` otherwise."""

    def __init__(self, config: MqttConfig, client_id: str) -> None:
        self._config = config
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._broker = config.broker()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,  # publish only: the guard, not a session, redelivers
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(0)  # our window instead (see the module doc)
        client.connect_timeout = config.connect_timeout_s
        if config.username is not None:
            password = config.password.reveal() if config.password is not None else None
            client.username_pw_set(config.username.reveal(), password)
        if self._broker.tls:
            tls = config.tls or TlsConfig()
            client.tls_set(
                ca_certs=tls.ca_file or None,
                certfile=tls.cert_file or None,
                keyfile=tls.key_file or None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._client = client
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._fd: int | None = None
        self._misc: asyncio.Task[None] | None = None
        self._flight: _Flight | None = None
        self._closing: asyncio.Future[None] | None = None  # close(): the DISCONNECT went out
        self.lost: SinkError | None = None  # set once the connection is gone

    @property
    def where(self) -> str:
        return f"{self._broker.host}:{self._broker.port}"

    async def connect(self) -> None:
        """Connect and wait for CONNACK, within `connect_timeout_s`; SinkError if not."""
        broker = self._broker
        opening = asyncio.ensure_future(
            asyncio.to_thread(self._client.connect, broker.host, broker.port, KEEPALIVE_S)
        )
        try:
            async with asyncio.timeout(self._config.connect_timeout_s):
                await asyncio.shield(opening)
                await self._connack
        except BaseException as exc:  # a refusal, a timeout, a cancellation: nothing kept
            if opening.done():
                self.abandon()
            else:  # the thread's own connect timeout ends it; then its socket goes too
                opening.add_done_callback(lambda _: self.abandon())
            if isinstance(exc, SinkError) or not isinstance(exc, OSError | ValueError):
                raise  # worded already, or no failure to connect (a cancellation)
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise SinkError(f"mqtt: cannot connect to {self.where}: {reason}") from exc

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.lost is not None:
            raise self.lost
        flight = _Flight(messages, self._loop.create_future())
        self._flight = flight
        try:
            self._top_up()
            await flight.done
        finally:
            self._flight = None

    async def close(self) -> None:
        """Send DISCONNECT (briefly waiting for it to go out), then let everything go."""
        if self.lost is None and self._fd is not None:
            gone = self._loop.create_future()
            self._closing = gone
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone, _CLOSE_S)
        self.abandon()

    def abandon(self) -> None:
        """Drop the connection at once (idempotent): socket, readers, the misc task."""
        if self.lost is None:
            self.lost = SinkError(f"mqtt: connection to {self.where} closed")
        self._fail(self.lost)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        sock = self._client.socket()
        self._unwatch()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # -- progress --------------------------------------------------------------------------

    def _top_up(self) -> None:
        """Hand paho messages while fewer than `max_inflight` await acknowledgement; resolve
        the flight once all of them were acknowledged."""
        flight = self._flight
        if flight is None or flight.done.done():
            return
        config, messages, publish = self._config, flight.messages, self._client.publish
        qos, retain, window = config.qos, config.retain, config.max_inflight
        while flight.sent < len(messages) and len(flight.unacked) < window:
            topic, payload = messages[flight.sent]
            info = publish(topic, payload, qos, retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._fail(SinkError(f"mqtt: publish failed: {mqtt.error_string(info.rc)}"))
                return
            flight.unacked.add(info.mid)
            flight.sent += 1
        if flight.sent == len(messages) and not flight.unacked:
            flight.done.set_result(None)

    def _fail(self, error: SinkError) -> None:
        """Whoever waits on this connection learns it is gone."""
        for waiter in (self._connack, self._flight.done if self._flight else None):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: no one may be waiting any more (a timeout)
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)

    def _readable(self) -> None:
        client = self._client
        client.loop_read()
        sock = client.socket()
        while isinstance(sock, ssl.SSLSocket) and sock.pending() and client.socket() is sock:
            client.loop_read()  # TLS may hold decrypted bytes the socket no longer signals
        self._top_up()

    def _writable(self) -> None:
        self._client.loop_write()
        self._top_up()  # QoS 0 messages count as sent once written

    async def _keep_alive(self) -> None:
        """paho's timekeeping (PINGREQ when idle, a silent broker noticed), once a second."""
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(_MISC_S)  # a clock, not a wait for a condition

    # -- paho's callbacks (the socket ones may come from the connect thread) -----------------

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        if code.is_failure:
            self._fail(SinkError(f"mqtt: {self.where} refused the connection: {code}"))
        elif not self._connack.done():
            self._connack.set_result(None)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.lost = SinkError(f"mqtt: disconnected from {self.where}: {code}")
        self._fail(self.lost)

    def _on_publish(self, client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
        flight = self._flight
        if flight is not None:
            flight.unacked.discard(mid)

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._watch, sock.fileno())

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch)

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._watch_writes)

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch_writes)

    def _watch(self, fd: int) -> None:
        if self.lost is not None:
            return  # abandoned while the connect thread ran
        self._fd = fd
        self._loop.add_reader(fd, self._readable)
        self._misc = self._loop.create_task(self._keep_alive())

    def _watch_writes(self) -> None:
        if self._fd is not None and self.lost is None:
            self._loop.add_writer(self._fd, self._writable)

    def _unwatch_writes(self) -> None:
        if self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _unwatch(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
