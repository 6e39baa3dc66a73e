"""`nats`: each reading and derived record published as one NATS message, JetStream-acked.

Guarantees, and why they hold:
- With `jetstream = true`, `write()` returns only once every message of the batch has its
  PubAck: the stream stored it. Up to `max_inflight` messages are in flight at once
  (`js.publish_async`, one reply subscription for all: ~2x a window of `js.publish` calls,
  measured), and every PubAck must arrive within `ack_timeout_s`. With `stream` set, each
  message also names the stream expected to store it, so a subject captured by another stream
  (or none) fails the batch instead of landing elsewhere. `jetstream = false` is core NATS: a
  batch is written once a flush (a PING answered) shows the server has every message — at most
  once, since core NATS keeps nothing without a subscriber.
- Any failure — a missing PubAck, an error ack, a lost connection — raises `SinkError`, so the
  guard (retry, breaker, spool) delivers the whole batch again: at-least-once, and what the
  stream had already stored of the failed attempt is stored again (a reading's `(sensor_id,
  seq)` identifies a repeat). A message over the server's max_payload is `PermanentSinkError`:
  no retry can make it fit. The connection of a failed batch is abandoned, never reused (its
  unanswered publishes would hold `max_inflight` slots); the next write connects afresh. That
  is also why nats-py's own reconnecting is off: the guard decides when to try again.
- Subjects come from the `subject` template. A value holding `.`, `*`, `>`, `%` or whitespace
  is percent-encoded (an empty one is `_`), so `{sensor_id}` is always exactly one token and a
  sensor id can never publish to a wildcard or to another sensor's subject; the payload keeps
  the id as it is (`daemon/sinks/publish.py`). Rejecting such records instead would dead-letter
  whole batches for one odd id.
- A server that is down never stops the daemon: `open()` logs it, writes raise `SinkError`
  until it answers. With `create`, a missing `stream` is created (capturing the template's
  subjects, each placeholder token a `*`) at the first connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors

from daemon.components import PermanentSinkError, SinkError
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.nats.config import NatsSinkConfig
from daemon.sinks.publish import Addresses, PublishSink, percent_escaper

__all__ = ["NatsSink", "NatsSinkConfig"]

ESCAPE = percent_escaper(".*>", spaces=True, empty="_")
_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError)  # TimeoutError is an OSError


class _Trouble:
    """What went wrong with one connection, as its callbacks report it.

    Why an error ack arrives here: nats-py 2.16's `publish_async` reply handler raises the
    error ack's APIError instead of setting it on the ack's future (`APIError.from_error`
    raises), so the future never resolves and the error reaches `error_cb`. Any error fails the
    batch, so which message it belonged to does not matter."""

    def __init__(self) -> None:
        self.happened = asyncio.Event()
        self.error: BaseException | None = None

    async def error_cb(self, error: BaseException) -> None:
        self.error = self.error or error
        self.happened.set()

    async def gone(self) -> None:
        self.happened.set()

    def reason(self) -> str:
        return str(self.error) if self.error is not None else "the connection was lost"


class NatsSink(PublishSink[NatsSinkConfig], name="nats"):
    """Publishes every reading and derived record to NATS; JetStream waits for every PubAck."""

    def __init__(self, config: NatsSinkConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx, Addresses(config.subject, ESCAPE))
        self._nc: Any = None  # nats.aio.client.Client while connected
        self._js: Any = None  # its JetStream context (jetstream = true)
        self._trouble = _Trouble()  # of the current connection
        self._closing: set[asyncio.Task[None]] = set()

    async def _publish(self, nc: Any, records: list[tuple[str, bytes]]) -> None:
        if self._js is not None:
            await self._publish_acked(records)
        else:
            await self._publish_core(nc, records)

    def _failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, nats.errors.MaxPayloadError):
            return PermanentSinkError(f"nats: a message is too large: {exc}")
        if isinstance(exc, _ERRORS):
            return SinkError(f"nats: {type(exc).__name__}: {exc}")
        return exc

    async def close(self) -> None:
        self._drop()
        if self._closing:
            await asyncio.wait(self._closing, timeout=self.config.connect_timeout_s)

    # -- publishing --------------------------------------------------------------------------

    async def _publish_acked(self, records: Sequence[tuple[str, bytes]]) -> None:
        """Publish with up to `max_inflight` PubAcks outstanding; return when all arrived.
        Fails when the connection reports trouble, or when `ack_timeout_s` passes with no
        PubAck at all (publishing waits for room in the window: no progress is the sign)."""
        acked = [0]

        def one_more(_: object) -> None:
            acked[0] += 1

        async def publish_all() -> None:
            # No `wait_stall`: with one, nats-py wraps every publish in `wait_for` (a task and
            # a timer each: measured 5x slower); the watch below bounds the stall instead.
            publish, stream = self._js.publish_async, self.config.stream or None
            acks = []
            for subject, payload in records:
                ack = await publish(subject, payload, stream=stream)
                ack.add_done_callback(one_more)
                acks.append(ack)
            await asyncio.gather(*acks)  # an error ack raises

        trouble, timeout = self._trouble, self.config.ack_timeout_s
        publishing = asyncio.ensure_future(publish_all())
        lost = asyncio.ensure_future(trouble.happened.wait())
        seen = -1
        try:
            while True:
                done, _ = await asyncio.wait(
                    (publishing, lost), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if publishing in done:
                    publishing.result()
                    return
                if lost in done or acked[0] == seen:
                    break
                seen = acked[0]
        finally:
            lost.cancel()
            if not publishing.done():
                publishing.cancel()
                with contextlib.suppress(asyncio.CancelledError, *_ERRORS):
                    await publishing
        why = trouble.reason() if lost.done() and not lost.cancelled() else f"none for {timeout}s"
        raise SinkError(f"nats: {len(records) - acked[0]} of {len(records)} PubAcks missing: {why}")

    async def _publish_core(self, nc: Any, records: Sequence[tuple[str, bytes]]) -> None:
        for subject, payload in records:
            await nc.publish(subject, payload)
        await nc.flush(timeout=self.config.ack_timeout_s)

    # -- the connection ----------------------------------------------------------------------

    async def _connected(self) -> Any:
        """The live connection (and its stream made ready), connecting first if needed."""
        if self._nc is not None and self._nc.is_connected:
            return self._nc
        self._drop()
        config = self.config
        self._trouble = trouble = _Trouble()
        servers = config.servers()
        try:
            # Each server tried once (nats-py's initial connect counts `reconnects` per server
            # and loops for ever at 0 attempts), the whole within connect_timeout_s a server.
            async with asyncio.timeout(config.connect_timeout_s * len(servers)):
                nc = await nats.connect(
                    servers=servers,
                    name=f"ingestd {self.ctx.label}",
                    connect_timeout=config.connect_timeout_s,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    user=config.user or None,
                    password=config.password.reveal() if config.password is not None else None,
                    token=config.token.reveal() if config.token is not None else None,
                    error_cb=trouble.error_cb,
                    disconnected_cb=trouble.gone,
                    closed_cb=trouble.gone,
                )
        except _ERRORS as exc:
            raise SinkError(f"nats: cannot connect to {config.url}: {exc!r}") from exc
        self._nc = nc
        if config.jetstream:
            self._js = nc.jetstream(
                timeout=config.ack_timeout_s, publish_async_max_pending=config.max_inflight
            )
            try:
                if config.create:
                    await self._ensure_stream()
            except _ERRORS as exc:
                self._drop()
                raise SinkError(f"nats: cannot create stream {config.stream}: {exc!r}") from exc
        self._gauge["connects"] += 1
        self.ctx.log.info(events.SINK_CONNECTED, sink=self.ctx.label, broker=config.url)
        return nc

    async def _ensure_stream(self) -> None:
        name = self.config.stream
        try:
            await self._js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        subjects = [self.config.capture()]
        try:
            await self._js.add_stream(name=name, subjects=subjects)
        except nats.js.errors.BadRequestError:  # created meanwhile by another daemon?
            await self._js.stream_info(name)
            return
        self.ctx.log.info(
            events.SINK_STREAM_CREATED, sink=self.ctx.label, stream=name, subjects=subjects
        )

    def _drop(self) -> None:
        """Let the connection go (closing it in the background) and forget it."""
        nc, self._nc, self._js = self._nc, None, None
        self._trouble.happened.set()
        if nc is not None and not nc.is_closed:
            task = asyncio.ensure_future(_close_quietly(nc))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


async def _close_quietly(nc: Any) -> None:
    with contextlib.suppress(*_ERRORS, asyncio.CancelledError):
        await nc.close()
