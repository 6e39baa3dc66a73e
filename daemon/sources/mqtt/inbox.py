"""Received messages waiting for the stream, bounded in count and bytes.

Why bounded here: at QoS 1 the broker sends at most Receive Maximum messages ahead of their
PUBACKs, but at QoS 0 nothing holds it back, and Mosquitto 2.0.11 does not keep to Receive
Maximum either (see `inflight`). So reading pauses once the inbox holds `max_messages` or
INBOX_BYTES, and resumes below half of both: TCP then pushes back on the broker, which keeps
what it cannot send (or, at QoS 0, drops it: its choice, counted by the broker).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from daemon.sources.messages import Message
from daemon.sources.mqtt.config import GROUP_BYTES, INBOX_BYTES


class Inbound(NamedTuple):
    message: Message
    mid: int  # the packet identifier to PUBACK; 0: QoS 0, nothing to acknowledge
    epoch: int  # the session it arrived in


class Inbox:
    def __init__(
        self, max_messages: int, pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        self._items: deque[Inbound] = deque()
        self._bytes = 0
        self._max = max_messages
        self._pause, self._resume = pause, resume
        self._paused = False
        self.arrived = asyncio.Event()  # set while something waits

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Inbound) -> None:
        self._items.append(item)
        self._bytes += len(item.message.payload)
        self.arrived.set()
        if not self._paused and self._holds(self._max, INBOX_BYTES):
            self._paused = True
            self._pause()

    def take(self, count: int) -> list[Inbound]:
        """Up to `count` messages, oldest first, at most GROUP_BYTES of payload (and at least
        one message)."""
        items = self._items
        taken: list[Inbound] = []
        size = 0
        while items and len(taken) < count and (size < GROUP_BYTES or not taken):
            item = items.popleft()
            size += len(item.message.payload)
            taken.append(item)
        self._bytes -= size
        if not items:
            self.arrived.clear()
        if self._paused and not self._holds(self._max // 2, INBOX_BYTES // 2):
            self._paused = False
            self._resume()
        return taken

    def _holds(self, count: int, size: int) -> bool:
        return len(self._items) >= count or self._bytes >= size
