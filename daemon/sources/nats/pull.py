"""Fetching from the pull consumer: as many as are waiting when busy, the first one at once
when idle.

Why two kinds of fetch: nats-py's `fetch(n, timeout)` first asks for what is waiting now
(`no_wait`) and returns it at once; only when nothing is waiting does it leave a lingering
request for `n` messages, and that one returns when `n` have come or `timeout` has passed. A
quiet stream would then hold its first message for the whole timeout. So:
- busy: `fetch(batch, fetch_linger_s)` — whatever is waiting, or what comes within a few ms;
- idle (the busy fetch found nothing): `fetch(1, IDLE_WAIT_S)`, which returns the moment one
  message arrives; then a busy fetch picks up whatever came with it.
A message is therefore never held longer than `fetch_linger_s` for company. The idle fetch is the
only one raced against `stop` (and against a reconnect, which loses the server's side of it):
cancelling it can strand at most one message in the client, redelivered after `ack_wait_s`;
a busy fetch always ends within a few ms and its messages are yielded.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from daemon.runtime import Token

IDLE_WAIT_S = 1.0  # one lingering request per second when nothing flows


class Puller:
    def __init__(self, sub: JetStreamContext.PullSubscription, batch: int, linger_s: float):
        self.sub = sub
        self.batch = batch
        self.linger_s = linger_s
        self.idle = False
        self.last_full = False  # the last fetch brought all it asked for: more may be waiting

    @property
    def waiting(self) -> bool:
        """Whether more messages are immediately waiting: buffered in the client already, or
        likely on the server (the last fetch was full)."""
        return self.last_full or self.sub.pending_msgs > 0

    async def more(self) -> list[Msg]:
        """What is waiting now (a busy fetch; never the idle wait)."""
        return await self._fetch(self.batch, self.linger_s)

    async def group(self, stop: Token, changed: asyncio.Event) -> list[Msg]:
        """The next messages, 1..batch of them; [] when `stop` was set, the connection
        changed or nothing came for `IDLE_WAIT_S`."""
        if not self.idle:
            msgs = await self._fetch(self.batch, self.linger_s)
            if msgs:
                return msgs
            self.idle = True
        msgs = await self._first(stop, changed)
        if not msgs:
            return []
        self.idle = False
        if self.batch > len(msgs):
            # a failure here must not lose the one in hand: the next fetch meets it again
            with contextlib.suppress(nats.errors.Error, OSError):
                msgs += await self._fetch(self.batch - len(msgs), self.linger_s)
        return msgs

    async def _fetch(self, n: int, wait_s: float) -> list[Msg]:
        try:
            msgs = await self.sub.fetch(n, timeout=wait_s)
        except TimeoutError:  # nothing came: nats-py raises its own subclasses or the builtin
            msgs = []
        self.last_full = len(msgs) >= n
        return msgs

    async def _first(self, stop: Token, changed: asyncio.Event) -> list[Msg]:
        fetching = asyncio.ensure_future(self._fetch(1, IDLE_WAIT_S))
        stopping = asyncio.ensure_future(stop.wait())
        reconnected = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait(
                {fetching, stopping, reconnected}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (stopping, reconnected):
                waiter.cancel()
            if not fetching.done():
                fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(stopping, reconnected, fetching, return_exceptions=True)
        changed.clear()
        if fetching.cancelled():
            return []
        return fetching.result()  # its errors (not timeouts) are the source's to handle
