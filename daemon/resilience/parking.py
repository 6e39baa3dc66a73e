"""The guarded sink's side of its spool: its own thread, the wait when full, the forced exit.

Why the spool has a thread of its own: every spool call is blocking file I/O (fsync above
all), so it runs off the event loop. In the loop's default executor it would queue behind sink
writes, and a sink write blocked for good (a FIFO nobody reads) holds a default-executor thread
for good: enough of them and the spool could never be written again, exactly when it is needed.
One thread per spool keeps calls in order and the spool independent of every sink.

Why episodes: when the spool cannot take a batch (its cap, ENOSPC or EDQUOT: `spool_full`; any
other error: `spool_write_failed`) the delivery waits and tries again, for as long as it takes.
One line says it started (with the reason and the spool's size) and one says it ended
(`spool_recovered`, with how long it lasted and whether the sink or the spool took the batch),
never one line per retry; the `spool_full` gauge is 1 in between.

Why waiting and not dropping or dead-lettering: a full spool means the sink is down and the disk
is short; the readings are fine. Waiting is backpressure: the sink loop awaits the delivery, so
the stages and the sources pause, and a broker source leaves its data upstream, unacknowledged.
Each round tries the sink again (its spool first, so order holds; a replay frees space too)
and then the spool. When force is set while it waits, the spool is tried once more ignoring its
cap (what is in flight is bounded), then the sink once (`LAST_CHANCE_S`; this one may overtake
spooled batches: a sink keyed on (sensor_id, seq) can reorder, nobody can unlose), and only then
is the batch given up: `abandoned`, logged `spool_abandoned` with its readings. That, a forced
exit with nowhere to put what is in flight, is the only loss; those readings stay `in_flight`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

from daemon.batch import Batch
from daemon.components import PermanentSinkError, RowsRefused, SinkError
from daemon.observability import events
from daemon.resilience.attempt import SinkCalls
from daemon.resilience.breaker import AsyncCircuitBreaker
from daemon.resilience.codec import encode_batch
from daemon.resilience.copies import SpoolCopies
from daemon.resilience.retry import backoff_delay
from daemon.resilience.segments import is_full
from daemon.resilience.spool import Spool

T = TypeVar("T")
LAST_CHANCE_S = 2.0  # a forced exit's one direct write when the spool is full (grace is 5 s)
_WAIT_BASE_S = 0.1  # backoff between tries while the spool cannot take a batch ...
_WAIT_MAX_S = 2.0  # ... capped

Outcome = Literal["written", "spooled", "rejected", "abandoned"]


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    reason: str | None = None
    # "written" except these rows, which the sink refused for good (`RowsRefused`): row index
    # in the batch -> reason. The fan-out (or the replay) dead-letters and counts only them.
    refused: Mapping[int, str] | None = None


def written_except(exc: RowsRefused) -> Delivery:
    return Delivery("written", refused=exc.refused)


WRITTEN = Delivery("written")
SPOOLED = Delivery("spooled")


def reason_of(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SpoolIO:
    def __init__(
        self,
        spool: Spool,
        log: Any,
        label: str,
        clock: Callable[[], float],
        publish: Callable[[], None],
    ) -> None:
        self.spool = spool
        self.published = publish  # the guarded sink's gauges, after each spool write
        self._log = log
        self._label = label
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._blocked_since: float | None = None
        self.blocked_reason: str | None = None

    @property
    def blocked(self) -> bool:
        return self._blocked_since is not None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the spool's thread; then what the spool found is logged."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"spool-{self._label}")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))
        finally:
            self.spool.reports.deliver()

    def shutdown(self) -> None:
        """Let the thread go once its queue is done (never waits: a hung disk must not hold the
        exit)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def failed(self, exc: OSError) -> None:
        """An append failed: the first failure of an episode is logged."""
        if self._blocked_since is not None:
            return
        self._blocked_since = self._clock()
        self.blocked_reason = str(exc)
        self._log.warning(
            events.SPOOL_FULL if is_full(exc) else events.SPOOL_WRITE_FAILED,
            sink=self._label,
            error=str(exc),
            spool_bytes=self.spool.disk_bytes,
            spool_max_bytes=self.spool.cap,
            action="deliveries wait (the sources pause) until the sink or the spool takes them",
        )
        self.published()

    def abandoned(self, readings: int, error: str) -> None:
        self._log.error(events.SPOOL_ABANDONED, sink=self._label, readings=readings, error=error)

    def recovered(self, taken_by: str) -> None:
        """A batch was taken (by the spool or the sink) after an episode: it ended."""
        if self._blocked_since is None:
            return
        self._log.info(
            events.SPOOL_RECOVERED,
            sink=self._label,
            taken_by=taken_by,
            blocked_s=round(self._clock() - self._blocked_since, 3),
            spool_bytes=self.spool.disk_bytes,
        )
        self._blocked_since = None
        self.blocked_reason = None
        self.published()


class Parker:
    """Puts a new batch into the spool, waiting while it is full (see the module doc)."""

    def __init__(
        self,
        io: SpoolIO,
        calls: SinkCalls,
        guard: AsyncCircuitBreaker,
        force: asyncio.Event,
        try_sink: Callable[[Batch], Awaitable[Delivery | None]],
    ) -> None:
        self._io = io
        self._calls = calls
        self._guard = guard
        self._force = force
        self._try_sink = try_sink

    async def park(self, batch: Batch, copies: SpoolCopies | None) -> Delivery:
        step = 0
        while not self._force.is_set():
            try:
                await self._append(batch, copies)
            except OSError as exc:
                self._io.failed(exc)
            else:
                self._io.recovered("spool")
                return SPOOLED
            await self._calls.pause(
                backoff_delay(step, base_delay_s=_WAIT_BASE_S, max_delay_s=_WAIT_MAX_S)
            )
            step += 1
            if self._force.is_set():
                break
            taken = await self._try_sink(batch)
            if taken is not None:
                self._io.recovered("sink")
                return taken
        return await self._forced(batch, copies)

    async def _forced(self, batch: Batch, copies: SpoolCopies | None) -> Delivery:
        try:
            await self._append(batch, copies, over_cap=True)
        except OSError as exc:
            error = str(exc)
        else:
            return SPOOLED
        try:
            await self._guard.call(partial(self._calls.last_chance, batch, LAST_CHANCE_S))
        except RowsRefused as exc:
            return written_except(exc)
        except PermanentSinkError as exc:
            return Delivery("rejected", reason_of(exc))
        except SinkError as exc:
            error = f"{error}; the sink: {reason_of(exc)}"
        else:
            return WRITTEN
        self._io.abandoned(len(batch), error)
        return Delivery("abandoned", error)

    async def _append(
        self, batch: Batch, copies: SpoolCopies | None, *, over_cap: bool = False
    ) -> None:
        counted = copies is None or copies.claim(self)
        payload = encode_batch(batch, copy=not counted)
        try:
            await self._io.run(self._io.spool.append_payload, payload, over_cap=over_cap)
        except BaseException:
            if copies is not None:
                copies.release(self)
            raise
        finally:
            self._io.published()
