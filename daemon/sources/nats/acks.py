"""Acknowledging taken messages, in order, off the pipeline's path.

Why a task of its own: `Source.taken` is synchronous (the pipeline calls it as a delivery
settles), while publishing with nats-py is a coroutine, even though all it does is append to the
client's outgoing buffer. One long-lived task drains a queue of taken groups, so acks go out in
the order the batches were taken and `drain()` can wait for the last of them at close.

What is held until then is each message's reply subject, not the message: an ack is an empty
message to that subject (exactly what nats-py's `Msg.ack()` publishes), so a payload's bytes are
freed once decoded, and `max_ack_pending` messages held cost ~100 bytes each, whatever their size.

Why a plain ack and not `ack_sync()` (measured with nats-py against nats-server 2.9 on
loopback, 50,000 messages fetched 1,000 at a time, uvloop: fetch alone ~40k msg/s, fetch + ack
~27-32k, fetch + `ack_sync` of a whole fetch concurrently ~12-13k): the server's confirmation
would only tell us the ack arrived, and a lost ack costs a redelivery, never a loss; the postgres
sink is idempotent on (sensor_id, seq), so a redelivered reading lands once anyway. `Link.close`
ends with a flush (a PING/PONG round trip), so the last acks are on the server before it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import nats
from nats.aio.client import Client

from daemon.observability import events
from daemon.runtime import ComponentContext


class Acker:
    def __init__(self, nc: Client, ctx: ComponentContext) -> None:
        self.nc = nc
        self.ctx = ctx
        self._groups: deque[list[str]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._gauge: dict[str, Any] = ctx.gauge()
        self._gauge.update(unacked=0, acked=0, ack_failures=0)
        self._failing = False

    def held(self, count: int) -> None:
        """`count` more messages are held unacknowledged (fetched, not yet taken)."""
        self._gauge["unacked"] += count

    def ack(self, replies: list[str]) -> None:
        """Acknowledge the messages of `replies` (every reading of them is durably taken)."""
        if not replies:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nats-acks")
        self._groups.append(replies)
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every group handed to `ack` is sent (True), at most `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        gauge, publish = self._gauge, self.nc.publish
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._groups:
                replies = self._groups.popleft()
                sent = 0
                for reply in replies:
                    try:
                        await publish(reply)
                        sent += 1
                    except (nats.errors.Error, OSError) as exc:
                        self._failed(exc)
                gauge["acked"] += sent
                gauge["unacked"] -= len(replies)
                if sent == len(replies):
                    self._failing = False
            self._idle.set()

    def _failed(self, exc: BaseException) -> None:
        """An ack that could not be sent: its message is redelivered after `ack_wait_s` (a
        duplicate downstream, never a loss). Logged once per run of failures."""
        self._gauge["ack_failures"] += 1
        if not self._failing:
            self._failing = True
            self.ctx.log.warning(
                events.SOURCE_ACK_FAILED,
                source=self.ctx.label,
                error=f"{type(exc).__name__}: {exc}",
            )
