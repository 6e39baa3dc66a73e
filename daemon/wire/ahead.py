"""Encoding ahead of the sinks, in child processes: the wire encoder on the second core.

Why: encoding is about half of the daemon's CPU per reading (see benchmarks/OPTIMISATIONS.md).
A thread does not help: the encoder is ~150 numpy calls a batch, each giving up and taking back
the GIL, and beside the stages the hand-offs cost more than the overlap gains (measured: 1,135
ns a reading threaded vs 885 serial). A process has its own GIL (see encoder_child.py). And it
must be fed ahead: with one batch at a time the two processes took turns (each ~45% busy),
because on these VMs waking a sleeping process costs 0.1-0.2 ms. So up to `DEPTH` batches are in
the children's hands, dealt round-robin, while the stages prepare the next.

The encoded bytes ride on the batch (`Batch.remember`: a view of its shared output slot); a
sink's `encode_for_sink` returns them instead of encoding again. A slot is reused only after the
batch that had it was delivered: at most `DEPTH` are submitted and not yet taken, and the sink
loop holds one delivery in flight and takes the next batch before awaiting it, so `DEPTH + 2`
slots suffice. A batch is yielded as soon as it is encoded (a feeder task pulls and submits),
so a quiet source's batch never waits for the next to arrive. A batch a child could not encode
(it died, or the batch is refused or too big) carries no bytes: the sink encodes it itself, and
reports a refusal as before. A dead child is replaced at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import structlog

from daemon.batch import Batch
from daemon.observability import events
from daemon.wire.child import EncoderChild, Reply, copy_in
from daemon.wire.encode import WIRE, warm_up

_log = structlog.get_logger(__name__)

PROCESSES: Final = 1  # encoder children (the second core); 2 measured no better here
DEPTH: Final = 3  # batches in the children's hands while the stages prepare the next
SLOTS: Final = DEPTH + 2  # + the one yielded last + the one being delivered
INPUT_BYTES: Final = 4 * 1024 * 1024  # per slot: the columns (virtual: touched pages count)
OUTPUT_BYTES: Final = 16 * 1024 * 1024  # per slot: the wire bytes; a bigger batch is skipped

_Submitted = tuple[Batch, "asyncio.Future[Reply] | None", int]


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None  # why the batches ended early, if they did


class EncodeAhead:
    """The children and the shared slots. `stream(batches)` yields the batches in order, each
    with its wire bytes in `memo` when a child encoded it."""

    def __init__(self, processes: int = PROCESSES) -> None:
        self._input = mmap.mmap(-1, SLOTS * INPUT_BYTES)  # anonymous: shared with the children
        self._output = mmap.mmap(-1, SLOTS * OUTPUT_BYTES)
        self._children = [
            EncoderChild(self._input, self._output, OUTPUT_BYTES, self._replace)
            for _ in range(processes)
        ]
        self._submitted = 0
        self.restarts = 0  # children replaced after one died
        self.encoded = 0  # batches a child encoded

    @property
    def pids(self) -> list[int]:
        return [pid for c in self._children if (pid := c.pid) is not None]

    def start(self) -> None:
        """Fork the children (needs the running event loop: replies are read on it)."""
        warm_up()  # inherited by the children: their first batch is not a cold start
        self._start_children()

    def _start_children(self) -> None:
        for child in self._children:
            if not child.alive:
                child.start()

    async def stream(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        """The batches in order, each as soon as it is encoded: a feeder task pulls and submits
        up to `DEPTH` ahead, so a quiet source's batch is not held back waiting for the next."""
        room = asyncio.Semaphore(DEPTH)  # submitted and not yet taken
        ahead: asyncio.Queue[_Submitted | _End] = asyncio.Queue()

        async def feed() -> None:
            try:
                async for batch in batches:
                    await room.acquire()
                    ahead.put_nowait(self._submit(batch))
            except BaseException as exc:  # re-raised by the consumer
                ahead.put_nowait(_End(exc))
                raise
            ahead.put_nowait(_End(None))

        feeder = asyncio.create_task(feed())
        try:
            while not isinstance(item := await ahead.get(), _End):
                room.release()
                yield await self._collect(*item)
            if item.error is not None:
                raise item.error
        finally:
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder

    async def close(self) -> None:
        for child in self._children:
            await child.close()

    def _submit(self, batch: Batch) -> _Submitted:
        """Hand `batch` to the next child, if the batch fits a slot."""
        slot, child = self._submitted % SLOTS, self._children[self._submitted % len(self._children)]
        self._submitted += 1
        if not len(batch):
            return batch, None, slot
        layout = copy_in(batch, self._input, slot * INPUT_BYTES, INPUT_BYTES)
        future = child.submit(slot, batch, layout) if layout is not None else None
        return batch, future, slot

    async def _collect(
        self, batch: Batch, future: asyncio.Future[Reply] | None, slot: int
    ) -> Batch:
        if future is None:
            return batch
        try:
            kind, length = await future
        except EOFError:  # the child died: the sink encodes this one
            return batch
        if kind == "ok":
            start = slot * OUTPUT_BYTES
            batch.remember(WIRE, memoryview(self._output)[start : start + length])
            self.encoded += 1
        return batch

    def _replace(self) -> None:
        """A child died (it failed what it owed): fork another in its place."""
        self.restarts += 1
        _log.warning(events.ENCODER_RESTARTED, restarts=self.restarts)
        self._start_children()
