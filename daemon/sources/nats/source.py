"""The `nats` source: a durable JetStream pull consumer, each message acked once taken.

How a message travels: a fetch brings 1..`batch` messages; they are decoded together by the
shared payload rules (`daemon.sources.messages`, the same as MQTT's); the rejects are
dead-lettered with their reason and subject (synchronously, fsynced); the good readings are
yielded as one batch, and `checkpoint` hands the pipeline the group's messages, all of them, the
rejected ones too. Only when `taken` says every reading of the batch is durably taken are they
acked. A group with no good reading is acked right after its dead letters are written. What is
never taken (a crash, a forced exit) is never acked: JetStream redelivers it after `ack_wait_s`,
to this daemon after a restart or to another one on the same durable.

Scaling out is JetStream's job: several daemons on one durable each fetch their own messages,
no message goes to two at once, and `max_ack_pending` caps what they all hold unacknowledged
together (the backpressure: a slow pipeline stops fetching, the server stops handing out).

Connection trouble is nats-py's job (see `connection`); a stream or consumer deleted under a
running daemon is re-created (`create = true`) or ends the source (`create = false`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from daemon.batch import Batch
from daemon.components import Source
from daemon.observability import events
from daemon.resilience.retry import backoff_delay
from daemon.runtime import ComponentContext
from daemon.sources.file.source import stopped_within
from daemon.sources.messages import Message, decode
from daemon.sources.nats.acks import Acker
from daemon.sources.nats.config import NatsConfig
from daemon.sources.nats.connection import Link
from daemon.sources.nats.consumer import NatsBindError, bind
from daemon.sources.nats.pull import Puller

__all__ = ["NatsBindError", "NatsConfig", "NatsSource"]

# A group keeps growing while the pipeline holds this many of our batches untaken: one being
# delivered and one queued behind it. A batch yielded now would only wait behind them, so it
# waits here instead and takes along what arrives meanwhile: when the sink is slower than the
# arrivals, batches grow to what it can commit at once, instead of `daemon.queue_batches`
# fetch-sized batches standing in line, each its own commit. Not 1: behind a stage that holds
# parts of batches the last batch is settled one delivery late. Never past HOLD_MAX_S.
# Measured at 10,000 sensors x 1 Hz into PostgreSQL on the shared 2-vCPU VM (load ~2.5): no
# difference either way (commit p99 36-171 ms with and without), as the sink kept up there.
IN_FLIGHT_HOLD = 2
HOLD_MAX_S = 0.25
BACKLOG_EVERY_S = 2.0  # how often the consumer is looked at: backlog gauges, still there?
_RETRY_MAX_S = 10.0


class NatsSource(Source[NatsConfig], name="nats"):
    """Reads readings from a NATS JetStream stream through a durable pull consumer."""

    def __init__(self, config: NatsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._rules = config.rules()
        self._link = Link(config, ctx)
        self._acker = Acker(self._link.nc, ctx)
        self._connecting: asyncio.Task[JetStreamContext.PullSubscription] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._yielded: list[str] | None = None  # reply subjects of the batch just yielded
        self._in_flight = 0  # our batches in the pipeline, not yet taken
        self._backlog: asyncio.Task[None] | None = None
        self._lost: APIError | None = None  # the consumer is gone (seen by _watch_backlog)
        self._gauge = ctx.gauge()
        self._gauge.update(messages=0, readings=0, rejected=0, backlog=0, redelivered=0)

    async def open(self) -> None:
        """Connect and bind within `connect_timeout_s` if the server answers; a binding that
        can never work (see `consumer`) fails here, before data flows. A server that does
        not answer yet is waited for by `stream()`, logged, so the daemon starts anyway."""
        self._connecting = asyncio.create_task(self._connect_and_bind(), name="nats-connect")
        await asyncio.wait({self._connecting}, timeout=self.config.connect_timeout_s)
        if self._connecting.done():
            try:
                self._sub = self._connecting.result()
            except BaseException:
                await self._link.close(self.config.connect_timeout_s)  # close() is not called
                raise
        else:
            self.ctx.log.warning(
                events.SOURCE_FAILED,
                source=self.ctx.label,
                error="not connected yet; retrying in the background",
                url=self.config.url,
            )

    async def _connect_and_bind(self) -> JetStreamContext.PullSubscription:
        """Connected, then bound; a binding that can never work raises (NatsBindError), one
        that failed for now (JetStream still starting after a server restart: a timeout) is
        tried again with backoff."""
        await self._link.connect()
        tries = 0
        while True:
            try:
                return await self._bind()
            except NatsBindError:
                raise
            except (nats.errors.Error, OSError) as exc:
                tries += 1
                delay = backoff_delay(tries, base_delay_s=0.1, max_delay_s=_RETRY_MAX_S)
                self.ctx.log.warning(
                    events.SOURCE_FAILED,
                    source=self.ctx.label,
                    error=f"cannot bind yet: {type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 3),
                )
                await asyncio.sleep(delay)  # a retry's backoff; cancelled by close()

    async def _bind(self) -> JetStreamContext.PullSubscription:
        js = self._link.nc.jetstream(timeout=self.config.connect_timeout_s)
        await bind(js, self.config, self.ctx.log)
        sub = await js.pull_subscribe_bind(durable=self.config.durable, stream=self.config.stream)
        info = await sub.consumer_info()
        self._gauge["backlog"] = info.num_pending or 0
        self.ctx.log.info(
            events.SOURCE_BOUND,
            source=self.ctx.label,
            stream=self.config.stream,
            durable=self.config.durable,
            backlog=info.num_pending or 0,
            unacked=info.num_ack_pending or 0,
        )
        return sub

    async def stream(self) -> AsyncGenerator[Batch, None]:
        sub = await self._bound()
        if sub is None:
            return
        if self._backlog is None:
            self._backlog = asyncio.create_task(self._watch_backlog(sub), name="nats-backlog")
        puller = Puller(sub, self.config.batch, self.config.fetch_linger_s)
        stop, force = self.ctx.stop, self.ctx.force
        failures = 0
        while not stop.is_set() and not force.is_set():
            if self._lost is not None:  # a fetch from a deleted consumer just times out
                lost, self._lost = self._lost, None
                failures += 1
                if await self._recover(lost, failures):
                    continue
                return
            try:
                replies, batch = await self._collect(puller)
            except (nats.errors.Error, OSError) as exc:  # e.g. the consumer was deleted
                failures += 1
                if await self._recover(exc, failures):
                    continue
                return
            failures = 0
            if batch is None:
                self._acker.ack(replies)  # nothing to wait for: all dead-lettered, or none came
                continue
            self._yielded = replies
            yield batch

    async def _collect(self, puller: Puller) -> tuple[list[str], Batch | None]:
        """A group: the next fetch, then more while more are immediately waiting (or while
        the pipeline is still busy with our earlier batches, see IN_FLIGHT_HOLD), up to
        `batch_max_readings`; decoded, its rejects dead-lettered; the reply subjects its acks go
        to (the messages themselves are let go once decoded). A quiet stream's group is one
        fetch, so nothing waits for company; a backlog's or a busy sink's fills up, so the sink
        commits thousands of readings at a time instead of one fetch's worth."""
        msgs = await puller.group(self.ctx.stop, self._link.changed)
        loop = asyncio.get_running_loop()
        began = loop.time()
        group: list[str] = []
        parts: list[Batch] = []
        readings, limit = 0, self.config.batch_max_readings
        while msgs or group:
            if msgs:
                group += [m.reply for m in msgs]
                part = self._decode(msgs)
                if part is not None:
                    parts.append(part)
                    readings += len(part)
            if readings >= limit or self.ctx.stop.is_set() or self.ctx.force.is_set():
                break
            busy = self._in_flight >= IN_FLIGHT_HOLD and loop.time() - began < HOLD_MAX_S
            if not puller.waiting and not busy:
                break
            try:
                msgs = await puller.more()
            except (nats.errors.Error, OSError):
                break  # what was collected is yielded; the next fetch meets the error again
        if not parts:
            return group, None
        return group, Batch.concat(parts)

    def _decode(self, msgs: list[Msg]) -> Batch | None:
        """One fetch's readings; its rejects dead-lettered (fsynced) before anything is yielded."""
        received = time.time()
        self._acker.held(len(msgs))
        gauge = self._gauge
        gauge["messages"] += len(msgs)
        decoded = decode([Message(m.subject, m.data, received) for m in msgs], self._rules)
        if decoded.rejects:
            gauge["rejected"] += self.ctx.reject(decoded.rejects)
        gauge["readings"] += decoded.readings
        return decoded.batch

    def checkpoint(self, batch: Batch) -> object | None:
        mark, self._yielded = self._yielded, None
        if mark is not None:
            self._in_flight += 1
        return mark

    def taken(self, mark: object) -> None:
        assert isinstance(mark, list)
        self._in_flight -= 1
        self._acker.ack(mark)

    async def close(self) -> None:
        """Send the acks of everything taken, then disconnect cleanly."""
        timeout = self.config.connect_timeout_s
        for task in (self._backlog, self._connecting):
            if task is not None:
                await _cancelled(task, timeout)
        if not await self._acker.drain(timeout):
            self.ctx.log.warning(
                events.SOURCE_ACK_FAILED,
                source=self.ctx.label,
                error=f"acks still queued after {timeout}s at close; they are redelivered",
            )
        await self._acker.close()
        await self._link.close(timeout)

    # -- internals ---------------------------------------------------------------------------

    async def _bound(self) -> JetStreamContext.PullSubscription | None:
        """The subscription, once connected and bound; None if stopped first."""
        if self._sub is not None:
            return self._sub
        connecting = self._connecting
        assert connecting is not None, "open() was not called"
        stopping = asyncio.ensure_future(self.ctx.stop.wait())
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not connecting.done():
            return None
        self._sub = connecting.result()
        return self._sub

    async def _recover(self, exc: Exception, failures: int) -> bool:
        """After a failed fetch: wait (backoff); after a refused one (an API error: the
        consumer or stream is gone) bind again. False when stopped first. A binding that can
        no longer work (create = false and the consumer is gone) raises. Other errors (the
        outgoing buffer full in a long outage) are nats-py's to recover from."""
        delay = backoff_delay(failures, base_delay_s=0.1, max_delay_s=_RETRY_MAX_S, jitter=True)
        why = exc.description if isinstance(exc, APIError) else None
        self.ctx.log.warning(
            events.SOURCE_FAILED,
            source=self.ctx.label,
            error=f"fetch failed: {why or f'{type(exc).__name__}: {exc}'}",
            retry_in_s=round(delay, 3),
        )
        if await stopped_within(self.ctx.stop, delay):
            return False
        if not isinstance(exc, APIError):
            return True
        try:
            await bind(self._link.nc.jetstream(), self.config, self.ctx.log)
        except NatsBindError:
            raise
        except (nats.errors.Error, OSError) as bind_exc:  # still down: try again next round
            self.ctx.log.warning(events.SOURCE_FAILED, source=self.ctx.label, error=str(bind_exc))
        return True

    async def _watch_backlog(self, sub: JetStreamContext.PullSubscription) -> None:
        """The consumer's backlog and redeliveries, for the health report and /metrics; and
        whether it still exists: pulling from a deleted consumer looks like a quiet stream
        (the pull request is never answered), so this is where its loss is noticed."""
        while True:
            try:
                info = await sub.consumer_info()
            except NotFoundError as exc:
                self._lost = exc
                self._link.changed.set()  # wakes an idle fetch
            except (nats.errors.Error, OSError):
                pass  # disconnected: the connection's events say so
            else:
                self._gauge["backlog"] = info.num_pending or 0
                self._gauge["redelivered"] = info.num_redelivered or 0
            await asyncio.sleep(BACKLOG_EVERY_S)


async def _cancelled(task: asyncio.Task[Any], within_s: float) -> None:
    """Cancel `task` and wait for it, at most `within_s`. Cancelled again every 0.1 s: on
    Python 3.11 `asyncio.wait_for` (nats-py connects through it) can swallow a cancellation that
    lands as its inner call completes, and nats-py's connect loop, told never to give up, would
    then try again forever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task.done() and not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()  # retrieved: its error was handled (or is moot) at close
