"""A sink wrapped in retry, circuit breaker and spool: the topology's only way to write.

Why one wrapper: "nothing is lost" needs the three to cooperate in a fixed order, and the
ordering promise — a sink sees readings in the order they arrived, spooled or not — only holds if
one object decides, per batch, between writing, replaying and spooling:

1. Force-stop requested → spool, do not even try the sink.
2. Older batches in the spool → replay them first (the first one is the half-open probe); if that
   fails, the new batch is spooled behind them. A new batch never overtakes a spooled one.
3. Breaker open → spool at once (fail fast).
4. Otherwise write + flush with retries, through the breaker; retries exhausted → a breaker
   failure, and the batch is spooled. A `PermanentSinkError` is "rejected" (the topology
   dead-letters it) and says nothing about the sink's health.

The topology counts the outcome of new batches; this class counts what replays deliver (see
`_settle`). One coroutine works at a time (an asyncio.Lock), so the timer-driven `maybe_replay`
cannot interleave with `deliver`. fsync-bound spool calls run in a worker thread so a slow disk
does not stall the event loop. With the breaker closed and the spool empty, `deliver` is the sink
write plus a lock, a few attribute checks and one `retry_call` frame.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError
from daemon.config.loader import SinkResilience
from daemon.deadletter import DeadLetterEntry
from daemon.observability import events
from daemon.resilience.breaker import (
    AsyncCircuitBreaker,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from daemon.resilience.codec import encode_batch
from daemon.resilience.retry import retry_call
from daemon.resilience.spool import Spool, SpooledBatch
from daemon.runtime import Lifetime, RunState

_CARRY_KEY = "resilience.spool_own_from"  # RunState.carry entry: {spool dir: first own segment}

Outcome = Literal["written", "spooled", "rejected"]


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    reason: str | None = None


WRITTEN = Delivery("written")
SPOOLED = Delivery("spooled")


@dataclass(slots=True)
class _ReplayRun:
    """What one replay run delivered, per origin (inherited from an earlier run or not)."""

    batches: int = 0
    readings: int = 0
    rejected: int = 0


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
        self._retry = resilience.retry
        self._sleep = sleep
        self._clock = clock
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
        )
        self._lock = asyncio.Lock()
        self._unavailable_since: float | None = None

    @property
    def state(self) -> BreakerState:
        return self._breaker.state

    @property
    def spool(self) -> Spool:
        return self._spool

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the sink and the spool, then replay what an earlier run left, before new data.

        A sink that cannot open yet (its server down, its path unusable) does not stop the
        daemon: its writes fail, the breaker opens, and the spool takes the data."""
        try:
            await self.sink.open()
        except SinkError as exc:
            self.log.warning(
                events.SINK_WRITE_FAILED, sink=self.label, error=repr(exc), during="open"
            )
        await asyncio.to_thread(self._spool.open)
        self._state.carry[_CARRY_KEY][self._spool_dir] = self._spool.own_from
        self._publish()
        async with self._lock:
            if self._spool.pending_bytes:
                await self._replay()

    async def flush(self) -> None:
        """Make what the sink acknowledged durable (the shutdown's flush phase); a failure is
        logged, not raised: what it held was counted written and the sink said so."""
        async with self._lock:
            try:
                await self.sink.flush()
            except SinkError as exc:
                self.log.warning(
                    events.SINK_WRITE_FAILED, sink=self.label, error=repr(exc), during="flush"
                )

    async def close(self) -> None:
        """Seal the spool, close it and the sink. Pending batches stay spooled."""
        async with self._lock:
            try:
                await asyncio.to_thread(self._spool.close)
            finally:
                await self.sink.close()
            self._publish()

    # -- the topology's calls ----------------------------------------------------------------

    async def deliver(self, batch: Batch) -> Delivery:
        """Write, spool or reject `batch`; never raises SinkError."""
        async with self._lock:
            if self._force.is_set():
                return await self._park(batch)
            if self._spool.pending_bytes and not await self._replay():
                return await self._park(batch)
            try:
                await self._guard.call(partial(self._write_retrying, batch))
            except CircuitOpenError:
                return await self._park(batch)
            except PermanentSinkError as exc:
                return Delivery("rejected", _reason(exc))
            except SinkError as exc:
                self.log.warning(
                    events.SINK_WRITE_FAILED,
                    sink=self.label,
                    error=repr(exc),
                    attempts=self._retry.attempts,
                )
                return await self._park(batch)
            return WRITTEN

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

    async def _write_once(self, batch: Batch) -> None:
        await self.sink.write(batch)
        await self.sink.flush()

    async def _write_retrying(self, batch: Batch) -> None:
        r = self._retry
        await retry_call(
            partial(self._write_once, batch),
            attempts=r.attempts,
            base_delay_s=r.base_delay_s,
            max_delay_s=r.max_delay_s,
            jitter=r.jitter,
            sleep=self._sleep,
        )

    async def _park(self, batch: Batch) -> Delivery:
        """Spool a new batch. If even the spool fails (disk full), reject it with the reason so
        it reaches the dead-letter file rather than vanishing."""
        payload = encode_batch(batch)
        try:
            await asyncio.to_thread(self._spool.append_payload, payload)
        except OSError as exc:
            return Delivery("rejected", f"sink unavailable and spool write failed: {exc}")
        finally:
            self._publish()
        return SPOOLED

    async def _replay(self) -> bool:
        """Deliver spooled batches oldest first until the spool is empty (True) or the sink
        fails or the breaker refuses (False). Emits one `spool_replayed` per origin."""
        runs = {True: _ReplayRun(), False: _ReplayRun()}
        try:
            while (item := self._spool.peek()) is not None:
                if self._force.is_set():
                    return False
                run = runs[item.inherited]
                rejected = False
                try:
                    await self._guard.call(partial(self._write_retrying, item.batch))
                except CircuitOpenError:
                    return False
                except PermanentSinkError as exc:
                    self._dead_letter(item, _reason(exc))
                    rejected = True
                    run.rejected += item.readings
                except SinkError as exc:
                    self.log.warning(
                        events.SINK_WRITE_FAILED, sink=self.label, error=repr(exc), replay=True
                    )
                    return False
                else:
                    run.batches += 1
                    run.readings += item.readings
                await asyncio.to_thread(self._spool.ack, item)
                self._settle(item, rejected=rejected)
            return True
        finally:
            self._report(runs)
            self._publish()

    def _settle(self, item: SpooledBatch, *, rejected: bool) -> None:
        """Count a replayed batch the sink acknowledged or refused (already dead-lettered).

        Inherited (an earlier run spooled it): it enters this run now — `replayed` — and leaves
        as `written` or `rejected`. Spooled in this run: it was counted `spooled` already; a
        delivery adds `unspooled`, a refusal nothing."""
        counters = self._state.counters
        n = item.readings
        if item.inherited:
            counters.replayed += n
            if rejected:
                counters.rejected += n
            else:
                counters.written += n
        elif not rejected:
            counters.unspooled += n

    def _dead_letter(self, item: SpooledBatch, reason: str) -> None:
        self._state.dead_letter.write_all(
            DeadLetterEntry(reason, self.label, record) for record in item.batch.to_records()
        )

    def _report(self, runs: dict[bool, _ReplayRun]) -> None:
        for inherited, run in runs.items():
            if run.batches or run.rejected:
                self.log.info(
                    events.SPOOL_REPLAYED,
                    sink=self.label,
                    batches=run.batches,
                    readings=run.readings,
                    rejected=run.rejected,
                    inherited=inherited,
                )

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
        gauge["open_since"] = self._unavailable_since


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
