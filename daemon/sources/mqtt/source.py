"""The `mqtt` source: subscribe to topics on an MQTT 5 broker; at QoS 1, lose nothing.

The flow of one group: the messages waiting in the session's inbox (at most about
`max_batch` readings' worth) are decoded together by the shared payload rules
(`daemon.sources.messages`), their rejects dead-lettered (fsynced) with reason and topic, and
the good readings yielded as one batch. The group's PUBACKs are released when the pipeline
says that batch is durably taken (`taken`), in arrival order (`acks.AckOrder`); a group with no
good reading is released at once, since the dead-letter write already made it durable.

A group is whatever is waiting when the stream comes back for more: under load the inbox holds
a socket read's worth or more, when quiet a single message goes on at once. No timer holds a
message back to wait for company.

On stop, the stream takes nothing more: what is still in the inbox is never acknowledged, so
the broker sends it again to the next run. The connection stays up until `close()`, so the acks
of the batches still draining go out first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from daemon.batch import Batch
from daemon.components import Source
from daemon.runtime import ComponentContext
from daemon.sources.messages import decode
from daemon.sources.mqtt.acks import AckOrder, Group
from daemon.sources.mqtt.config import MqttSourceConfig
from daemon.sources.mqtt.session import MqttSession

_INBOX_BATCHES = 4  # reading pauses once the inbox holds this many groups' worth of messages
_MIN_INBOX = 1024


class MqttSource(Source[MqttSourceConfig], name="mqtt"):
    """Subscribes to MQTT topics; at QoS 1 a message is acknowledged once durably taken."""

    def __init__(self, config: MqttSourceConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._rules = config.rules()
        self._session: MqttSession | None = None
        self._acks: AckOrder | None = None
        self._yielded: tuple[Batch, Group] | None = None
        self._readings_per_message = 1.0  # of the last group: sizes the next one

    async def open(self) -> None:
        """Start connecting; a broker that is down is retried (logged), it does not fail here."""
        inbox_max = max(_MIN_INBOX, _INBOX_BATCHES * self.config.max_batch)
        self._session = session = MqttSession(self.config, self.ctx, inbox_max=inbox_max)
        self._acks = AckOrder(session.ack)
        session.start()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def stream(self) -> AsyncGenerator[Batch, None]:
        session, acks = self._session, self._acks
        assert session is not None and acks is not None, "open() first"
        stop = self.ctx.stop
        rules = self._rules
        budget = self.config.max_batch
        while True:
            if not session.inbox and not await self._wait_for_messages(session):
                return
            if stop.is_set():
                return
            per_message = max(1.0, self._readings_per_message)
            group = session.inbox.take(max(1, min(budget, int(budget / per_message))))
            decoded = decode([item.message for item in group], rules)
            if decoded.rejects:
                self.ctx.reject(decoded.rejects)
            self._readings_per_message = (decoded.readings + len(decoded.rejects)) / len(group)
            ticket = acks.open(group)
            if decoded.batch is None:
                acks.done(ticket)
                continue
            self._yielded = (decoded.batch, ticket)
            yield decoded.batch

    def checkpoint(self, batch: Batch) -> object | None:
        yielded, self._yielded = self._yielded, None
        if yielded is None or yielded[0] is not batch:
            return None
        return yielded[1]

    def taken(self, mark: object) -> None:
        assert isinstance(mark, Group) and self._acks is not None
        self._acks.done(mark)

    async def _wait_for_messages(self, session: MqttSession) -> bool:
        """Until a message arrives (True) or the stop token is set; raises if the session's
        connection loop failed (a bug: it retries every network error itself)."""
        task = session.task
        waiters = [
            asyncio.ensure_future(session.inbox.arrived.wait()),
            asyncio.ensure_future(self.ctx.stop.wait()),
        ]
        try:
            await asyncio.wait(
                [*waiters, *([task] if task is not None else [])],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if task is not None and task.done():
            task.result()  # its error ends the stream loudly
            return False
        return True
