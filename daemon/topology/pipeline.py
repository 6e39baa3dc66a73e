"""One pipeline generation: built from one config, it owns its life from start-up to closed.

The supervisor (`daemon.app`) asks, the generation does: `request_stop(timeout_s, reason)`
begins a drain with a deadline, `force()` gives up at once. A generation's own `Lifetime` holds
the stop and force tokens its components watch, so a reload's next generation starts with fresh
ones and an exit request can never be lost between two generations. Shutdown runs in named
phases, each one `shutdown_phase` event with its duration:

  stop_sources   the sources end (they watch `stop`); what they read is queued
  drain_stages   everything queued goes through the stages into the sinks
  flush_sinks    every sink makes what it acknowledged durable
  close          pools, child processes, files and connections are released

When the drain deadline passes, `force` is set: sources end at once and the guarded sinks spool
instead of writing, so the drain finishes at disk speed. Whatever still runs `FORCED_GRACE_S`
after force is cancelled (`shutdown_abandoned`, with what was in flight). A force during
start-up cancels the opening (a broker that never answers cannot hold the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog

from daemon.components import Component
from daemon.config import AppConfig
from daemon.observability import events
from daemon.observability.health import StageStats
from daemon.runtime import Lifetime, RunState
from daemon.state import FLUSH_S as STATE_FLUSH_S
from daemon.topology.build import Components, build_components
from daemon.topology.fanout import FanOut
from daemon.topology.flow import (
    BatchQueue,
    chain,
    encoder_ahead,
    pump,
    sink_loop,
    until_done_or_set,
)
from daemon.topology.memory import keep_freed_memory, thaw_long_lived
from daemon.topology.receipts import Receipts

log = structlog.get_logger("pipeline")

FORCED_GRACE_S = 5.0  # after force: how long spooling in-flight data and closing may take
IDLE_REPLAY_S = 1.0


class Pipeline:
    def __init__(self, config: AppConfig, state: RunState, *, generation: int = 1) -> None:
        self.config = config
        self.state = state
        self.generation = generation
        self.lifetime = Lifetime()
        self.components: Components = build_components(config, state, self.lifetime)
        self.fanout = FanOut(self.components.sinks, state)
        self.stage_stats: dict[str, StageStats] = {
            stage.ctx.label: StageStats() for stage in self.components.stages
        }
        self.queue: BatchQueue | None = None
        self.phase = "created"
        self.reason = "end_of_stream"  # why it stops: end_of_stream | exit | reload
        self._entered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._stop_deadline: float | None = None
        self._stop_timer: asyncio.TimerHandle | None = None
        self._grace_deadline: float | None = None

    @property
    def queue_depth(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    @property
    def sink_stats(self) -> dict[str, StageStats]:
        """Per sink label: how long each delivery to it took (`FanOut.delivery_stats`)."""
        return self.fanout.delivery_stats

    def component_types(self) -> dict[str, str]:
        """Each component's registered type by label (`stages[0]` → `threshold_filter`)."""
        comps = self.components
        named: list[Any] = [*comps.sources, *comps.stages, *(g.sink for g in comps.sinks)]
        return {c.ctx.label: c.name for c in named}

    async def reached(self, phase: str) -> None:
        """Wait until the generation has entered `phase` ("running" once data flows)."""
        await self._entered[phase].wait()

    # -- asked by the supervisor -----------------------------------------------------------
    def request_stop(self, timeout_s: float, reason: str) -> None:
        """Drain and end; force the rest if not done within `timeout_s`. A later request may
        shorten the deadline (an exit during a reload's drain), never lengthen it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._stop_deadline is None or deadline < self._stop_deadline:
            if self._stop_timer is not None:
                self._stop_timer.cancel()
            self._stop_deadline = deadline
            self._stop_timer = loop.call_at(deadline, self._deadline_passed, timeout_s)
        if not self.lifetime.stop.is_set():
            self.reason = reason
            self.lifetime.stop.set()
            log.info(
                events.PIPELINE_STOPPING,
                generation=self.generation,
                reason=reason,
                phase=self.phase,
                timeout_s=timeout_s,
            )

    def force(self) -> None:
        """Stop trying: sources end, sinks spool, and `FORCED_GRACE_S` later the rest is cut."""
        if not self.lifetime.force.is_set():
            self._grace_deadline = asyncio.get_running_loop().time() + FORCED_GRACE_S
            self.lifetime.stop.set()
            self.lifetime.force.set()

    def _deadline_passed(self, timeout_s: float) -> None:
        if not self.lifetime.force.is_set():
            log.warning(
                events.SHUTDOWN_TIMEOUT,
                generation=self.generation,
                phase=self.phase,
                reason=self.reason,
                timeout_s=timeout_s,
            )
            self.force()

    # -- the life story --------------------------------------------------------------------
    async def run(self) -> None:
        """Open, flow until the end of the stream or a stop, drain, flush, close. Raises what
        a component raised, once everything before it was delivered and all is closed."""
        keep_freed_memory()  # before the first batch's temporaries (see memory.py)
        opened: list[Component[Any]] = []
        try:
            # Stopped during start-up: nothing was read, so there is nothing to drain.
            if await self._start(opened) and not self.lifetime.stop.is_set():
                await self._flow()
        finally:
            try:
                await self._finish(opened)
            finally:
                if self._stop_timer is not None:
                    self._stop_timer.cancel()
                thaw_long_lived()

    async def _start(self, opened: list[Component[Any]]) -> bool:
        """Open sinks, stages, sources in that order; False when a force cut the opening."""
        self._enter("starting")
        comps = self.components

        async def open_all() -> None:
            for guarded in comps.sinks:
                await guarded.open()
            for component in [*comps.stages, *comps.sources]:
                await component.open()
                opened.append(component)

        return await self._until_forced(open_all(), "starting")

    async def _flow(self) -> None:
        comps = self.components
        self.queue = asyncio.Queue(maxsize=self.config.daemon.queue_batches)
        ahead = encoder_ahead(comps.sinks)
        stream: AsyncIterator[Any] = chain(
            self.queue, comps.stages, self.stage_stats, self.state.taps
        )
        receipts = Receipts(parts_held=any(stage.holds_parts for stage in comps.stages))
        pumping = asyncio.create_task(
            pump(comps.sources, self.queue, self.state.counters, receipts), name="sources"
        )
        delivering = asyncio.create_task(
            sink_loop(ahead.stream(stream) if ahead else stream, self.fanout, receipts),
            name="sinks",
        )
        replayer = asyncio.create_task(self._replay_when_idle(), name="idle-replay")
        saver = asyncio.create_task(self._save_state_periodically(), name="state")
        self._enter("running")
        try:
            await until_done_or_set(pumping, self.lifetime.stop, delivering)
            async with self._phase("stop_sources"):
                await self._bounded(pumping)
            async with self._phase("drain_stages"):
                await self._bounded(delivering)
            delivering.result()  # a stage's or a sink loop's error first: it ended the flow
            receipts.settle_all()  # everything read was delivered (a source may have failed)
            pumping.result()  # then a source's error, raised once all it read was delivered
        finally:
            for task in (replayer, saver, pumping, delivering):
                task.cancel()
            await asyncio.gather(replayer, saver, pumping, delivering, return_exceptions=True)
            if ahead is not None:
                await ahead.close()

    async def _finish(self, opened: list[Component[Any]]) -> None:
        sinks = self.components.sinks
        async with self._phase("flush_sinks"):
            for guarded in sinks:
                await self._until_forced(guarded.flush(), "flush_sinks", grace=True)
        async with self._phase("close"):
            for component in reversed(opened):
                await self._until_forced(component.close(), "close", grace=True)
            for guarded in sinks:
                await self._until_forced(guarded.close(), "close", grace=True)
            await self._until_forced(self._save_state(), "close", grace=True)

    # -- bounded waiting -------------------------------------------------------------------
    async def _bounded(self, task: asyncio.Task[None]) -> None:
        """Wait for `task` to end (never raising its error); after a force, at most until
        the grace deadline, then cancel it."""
        await until_done_or_set(task, self.lifetime.force)
        if task.done():
            return
        assert self._grace_deadline is not None  # set with force
        loop = asyncio.get_running_loop()
        await asyncio.wait({task}, timeout=max(0.0, self._grace_deadline - loop.time()))
        if not task.done():
            self._abandon(self.phase)
            task.cancel()
            await asyncio.wait({task})

    async def _until_forced(
        self, step: Coroutine[Any, Any, None], phase: str, *, grace: bool = False
    ) -> bool:
        """Run `step` unless a force cuts it (at once, or with `grace` at the grace deadline);
        False when it was cut. Its own errors propagate."""
        task = asyncio.create_task(step)
        await self._bounded(task) if grace else await self._cut_by_force(task)
        if task.cancelled():
            if not grace:
                self._abandon(phase)
            return False
        task.result()
        return True

    async def _cut_by_force(self, task: asyncio.Task[None]) -> None:
        await until_done_or_set(task, self.lifetime.force)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})

    def _abandon(self, phase: str) -> None:
        log.error(
            events.SHUTDOWN_ABANDONED,
            generation=self.generation,
            phase=phase,
            in_flight=self.state.counters.in_flight,
        )

    # -- phases ----------------------------------------------------------------------------
    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._entered[phase].set()

    @contextlib.asynccontextmanager
    async def _phase(self, phase: str) -> AsyncIterator[None]:
        self._enter(phase)
        began = time.perf_counter()
        try:
            yield
        finally:
            log.info(
                events.SHUTDOWN_PHASE,
                generation=self.generation,
                phase=phase,
                reason=self.reason,
                duration_s=round(time.perf_counter() - began, 4),
                forced=self.lifetime.force.is_set(),
                in_flight=self.state.counters.in_flight,
            )

    async def _save_state(self) -> None:
        if self.state.store.dirty:
            await asyncio.to_thread(self.state.store.flush)

    async def _save_state_periodically(self) -> None:
        """What sources saved as taken reaches `state_dir` within `FLUSH_S`; dead letters a
        refused write left waiting are tried again as often."""
        while True:
            await asyncio.sleep(STATE_FLUSH_S)
            await self._save_state()
            self.state.dead_letter.retry()

    async def _replay_when_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_REPLAY_S)
            await self.fanout.replay_idle()
