"""PUBACKs released in the order the messages arrived, each group once it is taken.

Why an order at all: the pipeline settles yielded batches in order, but a group whose every
message was rejected has nothing to wait for and is done at once, possibly before an earlier
group still in flight. MQTT (4.6) asks a client to send PUBACKs in the order the PUBLISHes
arrived, so a done group waits here behind any earlier one that is not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from daemon.sources.mqtt.inbox import Inbound

SendAcks = Callable[[int, list[int]], None]  # (session epoch, packet identifiers)


class Group:
    """The packet identifiers of one decoded group of messages, by session epoch."""

    __slots__ = ("by_epoch", "done")

    def __init__(self, messages: Iterable[Inbound]) -> None:
        self.by_epoch: dict[int, list[int]] = {}
        for item in messages:
            if item.mid:
                self.by_epoch.setdefault(item.epoch, []).append(item.mid)
        self.done = False


class AckOrder:
    def __init__(self, send: SendAcks) -> None:
        self._send = send
        self._open: deque[Group] = deque()

    def open(self, messages: Iterable[Inbound]) -> Group:
        """A group just taken from the inbox; `done(group)` once all of it is taken."""
        group = Group(messages)
        self._open.append(group)
        return group

    def done(self, group: Group) -> None:
        group.done = True
        queue = self._open
        while queue and queue[0].done:
            for epoch, mids in queue.popleft().by_epoch.items():
                self._send(epoch, mids)

    @property
    def waiting(self) -> int:
        """Groups opened and not yet released."""
        return len(self._open)
