"""A sink wrapped in retry, circuit breaker and spool: the topology's only way to write.

Why one wrapper: "nothing is lost" needs the three to cooperate in a fixed order, and the
ordering promise — a sink sees readings in the order they arrived, spooled or not — only holds if
one object decides, per batch, between writing, replaying and spooling:

1. Force-stop requested → spool, do not even try the sink.
2. Older batches in the spool → replay them first (the first one is the half-open probe); if that
   fails, the new batch is spooled behind them. A new batch never overtakes a spooled one.
3. Breaker open → spool at once (fail fast).
4. Otherwise write + flush with retries, through the breaker, each try within `write_timeout_s`
   (`attempt.py`); retries exhausted → a breaker failure, a timeout → the breaker opens; either
   way the batch is spooled. A `PermanentSinkError` is "rejected" (the topology dead-letters it)
   and says nothing about the sink's health. `RowsRefused` (the sink took the batch but for
   some rows) is "written" with those rows named: only they are dead-lettered and rejected.

When the spool cannot take the batch (its cap, a full disk, any write error) the batch is neither
dropped nor counted: `deliver` waits — the sink loop awaits it, so the stages and the sources
pause — and keeps trying the sink (replay first) and the spool, with backoff, until one takes it.
At a forced exit with nowhere to put it, it is `abandoned`: the only loss (`parking.py`).

A thread blocked in the kernel (a sink's aiofiles write to a FIFO nobody reads) cannot be
stopped by anyone: the deadline returns the delivery on time, but the thread stays blocked in the
loop's default executor, so the process must not wait for that executor at exit (`attempt.py`).

The sink is handed only the part of each batch its `kinds` select (`kinds.py`); that part is what
it writes, spools and replays. A batch with nothing for it never reaches it (taken, trivially).

The topology counts the outcome of new batches; this class counts what replays deliver (see
`replay.settle`), once per reading whatever the number of sinks (`copies.py`). One coroutine
works at a time (an asyncio.Lock), so the timer-driven `maybe_replay` cannot interleave with
`deliver`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from daemon.batch import Batch
from daemon.components import PermanentSinkError, RowsRefused, Sink, SinkError
from daemon.config.loader import SinkResilience
from daemon.deadletter import DeadLetterEntry
from daemon.observability import events
from daemon.resilience.attempt import Forced, SinkCalls, WriteTimeout
from daemon.resilience.breaker import (
    AsyncCircuitBreaker,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from daemon.resilience.copies import SpoolCopies
from daemon.resilience.kinds import Taking
from daemon.resilience.parking import (
    WRITTEN,
    Delivery,
    Parker,
    SpoolIO,
    reason_of,
    written_except,
)
from daemon.resilience.replay import ReplayRuns, dead_letter, dead_letter_rows, settle
from daemon.resilience.spool import Spool
from daemon.runtime import Lifetime, RunState

_CARRY_KEY = "resilience.spool_own_from"  # RunState.carry entry: {spool dir: first own segment}


class GuardedSink:
    def __init__(
        self,
        sink: Sink[Any],
        resilience: SinkResilience,
        state: RunState,
        lifetime: Lifetime,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.sink = sink
        self.label: str = sink.ctx.label
        self.log = sink.ctx.log
        self._state = state
        self._force = lifetime.force
        self.taking = Taking(resilience.kinds if resilience.kinds is not None else sink.stores)
        self._calls = SinkCalls(
            sink, resilience.retry, resilience.write_timeout_s, self._force, sleep
        )
        self._clock = clock
        self._attempts = resilience.retry.attempts
        self._breaker = CircuitBreaker(
            resilience.breaker.failure_threshold,
            resilience.breaker.reset_timeout_s,
            clock=clock,
            on_change=self._on_breaker_change,
        )
        self._guard = AsyncCircuitBreaker(self._breaker)
        self._spool_dir = resilience.spool_dir
        own = state.carry.setdefault(_CARRY_KEY, {})
        self._spool = Spool(
            resilience.spool_dir,
            segment_bytes=resilience.spool_segment_bytes,
            counters=state.counters,
            log=self.log,
            label=self.label,
            own_from=own.get(resilience.spool_dir),
            max_bytes=resilience.spool_max_bytes,
            deferred=True,
        )
        self._io = SpoolIO(self._spool, self.log, self.label, clock, self._publish)
        self._parker = Parker(self._io, self._calls, self._guard, self._force, self._try_sink)
        self._lock = asyncio.Lock()
        self._unavailable_since: float | None = None

    @property
    def state(self) -> BreakerState:
        return self._breaker.state

    @property
    def spool(self) -> Spool:
        return self._spool

    @property
    def takes_readings(self) -> bool:
        """Whether its outcome counts for the readings (else it acknowledges them trivially)."""
        return self.taking.takes_readings

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the sink and the spool, then replay what an earlier run left, before new data.

        A sink that cannot open yet (its server down, its path unusable, an open that hangs
        past `write_timeout_s`) does not stop the daemon: its writes fail, the breaker opens,
        and the spool takes the data. Nothing in the spool directory stops it either."""
        try:
            await self._calls.bounded(self.sink.open(), "open")
        except Forced:
            pass  # the spool still opens: a forced exit's in-flight batches go there
        except SinkError as exc:
            self._write_failed(exc, during="open")
        await self._io.run(self._spool.open)
        self._state.carry[_CARRY_KEY][self._spool_dir] = self._spool.own_from
        self._publish()
        async with self._lock:
            if self._spool.pending_bytes and not self._force.is_set():
                await self._replay()

    async def flush(self) -> None:
        """Make what the sink acknowledged durable (the shutdown's flush phase); a failure is
        logged, not raised: what it held was counted written and the sink said so."""
        async with self._lock:
            try:
                await self._calls.bounded(self.sink.flush(), "flush", cut_by_force=False)
            except SinkError as exc:
                self._write_failed(exc, during="flush")

    async def close(self) -> None:
        """Seal the spool, close it and the sink (within the deadline). Pending batches stay."""
        async with self._lock:
            try:
                await self._io.run(self._spool.close)
            finally:
                try:
                    await self._calls.bounded(self.sink.close(), "close", cut_by_force=False)
                except SinkError as exc:
                    self.log.warning(events.SINK_CLOSE_FAILED, sink=self.label, error=repr(exc))
                self._calls.close()
                self._io.shutdown()
                self._publish()

    # -- the topology's calls ----------------------------------------------------------------

    async def deliver(self, batch: Batch, copies: SpoolCopies | None = None) -> Delivery:
        """Write, spool or reject the part of `batch` this sink takes (abandon it only at a
        forced exit with no room anywhere); never raises SinkError. `copies`: shared by the
        fan-out's sinks."""
        part = self.taking.part(batch)
        if part is None:
            return WRITTEN  # nothing of it is for this sink: taken, without a call
        if not self.takes_readings:
            copies = None  # its parts count no reading, so they never carry the count
        async with self._lock:
            delivery: Delivery | None = None
            if not self._force.is_set():
                delivery = await self._try_sink(part)
            if delivery is None:
                delivery = await self._parker.park(part, copies)
        if delivery.outcome == "rejected" and not len(part):
            self._refused_records(part, delivery.reason or "rejected by sink")
        return delivery

    async def maybe_replay(self) -> bool:
        """Replay if the spool holds batches and the breaker allows; True when the spool is
        empty afterwards. Safe to call from a timer while `deliver` runs elsewhere."""
        async with self._lock:
            if not self._spool.pending_bytes:
                return True
            if self._force.is_set():
                return False
            return await self._replay()

    # -- internals ---------------------------------------------------------------------------

    async def _try_sink(self, batch: Batch) -> Delivery | None:
        """Replay what waits, then write `batch`: written or rejected; None when the sink
        cannot take it now (spool it)."""
        if self._spool.pending_bytes and not await self._replay():
            return None
        try:
            await self._guard.call(partial(self._calls.write, batch))
        except (CircuitOpenError, Forced):
            return None
        except RowsRefused as exc:  # written but for those rows: the fan-out dead-letters them
            return written_except(exc)
        except PermanentSinkError as exc:
            return Delivery("rejected", reason_of(exc))
        except SinkError as exc:
            self._write_failed(exc, attempts=self._attempts)
            return None
        return WRITTEN

    async def _replay(self) -> bool:
        """Deliver spooled batches oldest first until the spool is empty (True) or the sink
        fails or the breaker refuses (False). Emits one `spool_replayed` per origin."""
        runs = ReplayRuns()
        try:
            while not self._force.is_set():
                if await self._io.run(self._spool.load_head) is None:
                    return True
                item = self._spool.peek()
                assert item is not None  # loaded just now
                rejected, refused = False, 0
                part = self.taking.part(item.batch)  # the kinds may have changed since
                try:
                    if part is not None:
                        await self._guard.call(partial(self._calls.write, part))
                except (CircuitOpenError, Forced):
                    return False
                except RowsRefused as exc:  # written but for those rows
                    dead_letter_rows(self._state, self.label, item.batch, exc.refused)
                    refused = len(exc.refused)
                except PermanentSinkError as exc:
                    dead_letter(self._state, self.label, item, reason_of(exc))
                    if part is not None and not len(part):
                        self._refused_records(part, reason_of(exc))
                    rejected = True
                except SinkError as exc:
                    self._write_failed(exc, replay=True)
                    return False
                await self._io.run(self._spool.ack, item)
                runs.add(item, rejected=rejected, refused=refused)
                settle(self._state.counters, item, rejected=rejected, refused=refused)
            return False
        finally:
            runs.report(self.log, self.label)
            self._publish()

    def _refused_records(self, part: Batch, reason: str) -> None:
        """A part without readings refused for good: its derived records are dead-lettered
        with the reason (not counted `rejected`: they are not readings), never dropped
        unseen. A part with readings goes the readings' way (the fan-out dead-letters them)."""
        self._state.dead_letter.write_all(
            DeadLetterEntry(reason, self.label, record) for record in part.derived
        )
        self.log.warning(
            events.SINK_REJECTED,
            sink=self.label,
            readings=0,
            records=len(part.derived),
            reason=reason,
        )

    def _write_failed(self, exc: SinkError, **fields: Any) -> None:
        if isinstance(exc, WriteTimeout):
            self._breaker.trip()
            self.log.warning(events.SINK_WRITE_TIMEOUT, sink=self.label, error=str(exc), **fields)
        else:
            self.log.warning(events.SINK_WRITE_FAILED, sink=self.label, error=repr(exc), **fields)

    def _on_breaker_change(self, frm: BreakerState, to: BreakerState) -> None:
        if frm == "closed":
            self._unavailable_since = self._clock()
        elif to == "closed":
            self._unavailable_since = None
        log = self.log.warning if to == "open" else self.log.info
        log(events.BREAKER_STATE_CHANGED, sink=self.label, **{"from": frm, "to": to})
        self._publish()

    def _publish(self) -> None:
        gauge = self.sink.ctx.gauge()
        gauge["breaker"] = self._breaker.state
        gauge["spool_pending"] = self._spool.pending_readings
        gauge["spool_batches"] = self._spool.pending_batches
        gauge["spool_bytes"] = self._spool.pending_bytes
        gauge["spool_full"] = int(self._io.blocked)
        gauge["open_since"] = self._unavailable_since
