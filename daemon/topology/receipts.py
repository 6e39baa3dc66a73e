"""When is a source's batch durably taken? Order answers it, without tagging every reading.

The pipeline keeps order end to end: the pump numbers each batch a source yields (`ordinal`),
stages pass batches on in order (`select`/`concat` keep the number; a merge keeps the smallest),
and the sink loop delivers one batch at a time. So once a batch numbered k has been delivered
(written by every sink, spooled, or dead-lettered), every batch numbered below k is taken too:
it was delivered before, or a stage filtered all of it. Batch k itself is taken at once too,
unless a stage declares `holds_parts` (it may yield part of a batch and keep the rest for later):
then batch k is settled when a later one is delivered, or when the drain ends with everything
delivered. Settling at once matters to a broker source: a broker that sends no more until its
messages are acknowledged would otherwise wait for a batch that cannot come. A batch still in
flight at a forced exit is never settled, so its source will offer it again after a restart (a
file position) or the broker will (an unacknowledged message): at-least-once, never zero times.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from daemon.batch import Batch
from daemon.components import Source


class Receipts:
    def __init__(self, *, parts_held: bool = False) -> None:
        """`parts_held`: some stage may hold part of a batch after yielding the rest."""
        self._through = 0 if parts_held else 1  # a delivered k settles below k + this
        self._next = 0
        self._pending: deque[tuple[int, Source[Any], object]] = deque()
        self._closed = False

    def issue(self, source: Source[Any], batch: Batch) -> None:
        """Number `batch` as it enters; remember the source's checkpoint for it, if any."""
        batch.ordinal = self._next
        self._next += 1
        mark = source.checkpoint(batch)
        if mark is not None:
            self._pending.append((batch.ordinal, source, mark))

    def delivered(self, batch: Batch) -> None:
        """`batch` was delivered: settle every source batch numbered below it, and itself
        unless a stage may still hold part of it."""
        if batch.ordinal >= 0:
            self._settle(batch.ordinal + self._through)

    def settle_all(self) -> None:
        """The drain delivered everything read: every batch is taken."""
        self._settle(self._next)

    def close(self) -> None:
        """A batch was abandoned (a forced exit could place it nowhere): from here on nothing
        is settled, so a restart reads it, and all after it, again."""
        self._closed = True

    def _settle(self, below: int) -> None:
        if self._closed:
            return
        pending = self._pending
        while pending and pending[0][0] < below:
            _, source, mark = pending.popleft()
            source.taken(mark)
