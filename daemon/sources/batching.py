"""Batching for sources that receive readings a message at a time (brokers, sockets, HTTP).

A pipeline moves column batches, not records (DESIGN principle 2), so every such source needs
the same two things, written once here:

- `batched(items, max_items=, max_latency_s=)`: group an async stream into lists of at most
  `max_items`, each one handed on no later than `max_latency_s` after its first item arrived
  (a quiet stream still flows; a busy one fills batches). An item being awaited when the
  latency deadline passes is not lost: the same pending `__anext__` is awaited again.
- `BatchBuilder`: readings appended one by one, taken as one `Batch` whose numpy columns are
  built in one pass.

Sources that produce whole chunks already (the simulated sensors, the file replay) batch in
their own vectorised way and do not need this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from daemon.batch import Batch
from daemon.sensors import SENSORS

T = TypeVar("T")


async def batched(
    items: AsyncIterator[T], *, max_items: int, max_latency_s: float
) -> AsyncGenerator[list[T], None]:
    """`items` in lists of 1..`max_items`, each yielded within `max_latency_s` of its first
    item's arrival; the last, partial list at the end of the stream."""
    if max_items < 1 or max_latency_s < 0:
        raise ValueError("max_items must be >= 1 and max_latency_s >= 0")
    loop = asyncio.get_running_loop()
    source = aiter(items)
    pending: asyncio.Future[T] | None = None
    group: list[T] = []
    deadline = 0.0
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            timeout = max(0.0, deadline - loop.time()) if group else None
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:  # the first item has waited long enough: hand the group on
                yield group
                group = []
                continue
            fetched, pending = pending, None
            try:
                item = fetched.result()
            except StopAsyncIteration:
                if group:
                    yield group
                return
            if not group:
                deadline = loop.time() + max_latency_s
            group.append(item)
            if len(group) >= max_items:
                yield group
                group = []
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


class BatchBuilder:
    """Readings appended one at a time, taken as one `Batch`."""

    __slots__ = ("_sensor", "_seq", "_stale", "_ts", "_value")

    def __init__(self) -> None:
        self._sensor: list[int] = []
        self._seq: list[int] = []
        self._ts: list[float] = []
        self._value: list[float] = []
        self._stale: list[bool] = []

    def __len__(self) -> int:
        return len(self._seq)

    def add(
        self,
        sensor_id: str,
        seq: int,
        ts: float,
        value: float,
        *,
        unit: str = "",
        stale: bool = False,
    ) -> None:
        """One reading: `ts` in epoch seconds; the first `unit` seen for a sensor sticks."""
        self._sensor.append(SENSORS.intern(sensor_id, unit))
        self._seq.append(seq)
        self._ts.append(ts)
        self._value.append(value)
        self._stale.append(stale)

    def take(self) -> Batch:
        """Everything added so far as one batch, in the order added; the builder is empty after."""
        batch = Batch.from_columns(self._sensor, self._seq, self._ts, self._value, self._stale)
        self.__init__()  # type: ignore[misc]
        return batch
