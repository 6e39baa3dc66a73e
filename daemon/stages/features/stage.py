"""`features`: per-sensor tumbling-window features, computed off the event loop.

Every `window` readings of a sensor form a window; each completed window becomes one derived
record (`kind="features"`, see DESIGN.md) attached to the batch whose reading completed it. The
math for all windows a batch completed is ONE submission to a process pool; up to `max_pending`
batches are in flight while the stage keeps reading, and batches leave in input order.

Failure design: a worker killed mid-stream breaks the pool (`BrokenProcessPool`); the pool is
replaced and every affected batch is resubmitted once, then computed inline — nothing lost. On
`force` (second SIGTERM) the stage stops waiting on the pool and computes what is pending inline.
Readings always pass through; only feature records could be lost (logged) if the math itself fails.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Annotated, Any

from daemon.batch import Batch, FloatArray
from daemon.components import Stage
from daemon.config.fields import Range
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sensors import SENSORS
from daemon.stages.features import window_math
from daemon.stages.features.pool import FeaturePool
from daemon.stages.features.readahead import ReadAhead
from daemon.stages.features.tumbling import Completed, TumblingWindows
from daemon.stages.windows.grouping import carried, runs_of

POOL_START_TIMEOUT_S = 60.0  # generous: a cold start imports numpy in every worker


@dataclass(slots=True)
class _Job:
    """One input batch on its way through the stage."""

    batch: Batch
    done: Completed  # the windows it completed (often none)
    result: FloatArray | None = None  # (k, 8) features, once computed
    future: asyncio.Future[FloatArray] | None = None  # while a pool computes them
    executor: ProcessPoolExecutor | None = None  # the pool that got the last submission
    attempts: int = 0  # pool submissions so far


@dataclass(frozen=True)
class FeaturesConfig:
    """The `features` stage's keys."""

    window: Annotated[
        int, Range(ge=2, le=65_536), "readings per sensor in each tumbling window"
    ] = 256
    workers: Annotated[
        int, Range(ge=0, le=64), "feature worker processes; 0 computes inline on the loop"
    ] = 2
    max_pending: Annotated[
        int, Range(ge=1, le=1024), "batches in flight to the pool before the stage waits"
    ] = 8


class Features(Stage[FeaturesConfig], name="features"):
    """Per-sensor tumbling-window features as derived records, computed in a process pool.

    Each record: mean, std, min, max, slope, p95, dominant_hz, anomaly_score (see DESIGN.md).
    """

    def __init__(self, config: FeaturesConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.windows = carried(
            ctx.carry,
            "features.windows",
            TumblingWindows,
            lambda: TumblingWindows(config.window),
            window=config.window,
        )
        self.pool = FeaturePool(config.workers, config.window) if config.workers else None

    async def open(self) -> None:
        """Start and warm the pool, so the first batch does not wait for processes. A pool that
        cannot start (no /dev/shm in a sandbox, a fork limit) degrades to inline math, logged."""
        if self.pool is not None:
            try:
                async with asyncio.timeout(POOL_START_TIMEOUT_S):
                    await self.pool.start()
            except (OSError, TimeoutError, BrokenProcessPool) as exc:
                self.ctx.log.error(events.FEATURES_FAILED, where="pool_start", error=repr(exc))
                await self.pool.close(wait=False)
                self.pool = None
        self._gauge(0)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close(wait=not self.ctx.force.is_set())

    async def process(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        """Read ahead while the pool computes; emit batches in input order as they are ready."""
        jobs: deque[_Job] = deque()
        reader = ReadAhead(aiter(batches))
        force = self.ctx.force
        forced = asyncio.ensure_future(force.wait())
        try:
            while True:
                while jobs and self._settled(jobs):
                    out = self._emit(jobs.popleft())
                    if out is not None:
                        yield out
                self._gauge(sum(1 for job in jobs if job.future is not None))
                if reader.exhausted and not jobs:
                    return
                if force.is_set() and jobs:
                    self._all_inline(jobs)  # every job is ready now: emit them
                    continue
                waits: set[asyncio.Future[Any]] = set() if force.is_set() else {forced}
                if jobs and jobs[0].future is not None:
                    waits.add(jobs[0].future)
                if not reader.exhausted and len(jobs) < self.config.max_pending:
                    waits.add(reader.next())
                if waits:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                batch = reader.take()
                if batch is not None:
                    jobs.append(self._start(batch))
        finally:
            forced.cancel()
            reader.cancel()
            for job in jobs:  # left behind when the consumer stopped early
                if job.future is not None:
                    _abandon(job.future)

    # -- one job's life: start → (pool | inline) → settled → emitted ---------------------------

    def _start(self, batch: Batch) -> _Job:
        completed = self.windows.push(
            batch.sensor, batch.seq, batch.ts, batch.value, runs_of(batch)
        )
        job = _Job(batch, completed)
        if len(job.done) == 0:
            return job
        if self.pool is None or self.ctx.force.is_set():
            self._inline(job)
        else:
            self._submit(job)
        return job

    def _submit(self, job: _Job) -> None:
        """Submit to the pool: the first attempt, or the one retry on a replacement pool; after
        that (or if even the fresh pool is broken) compute inline."""
        assert self.pool is not None
        while job.attempts < 2 and not self.ctx.force.is_set():
            job.attempts += 1
            try:
                job.executor, job.future = self.pool.submit(job.done.values, job.done.ts)
                return
            except BrokenProcessPool as exc:
                self._replace(self.pool.executor, exc)
        self._inline(job)

    def _settled(self, jobs: deque[_Job]) -> bool:
        """Whether the head job's features are final; recovers it (and every other job on the
        same pool) when its pool broke."""
        head = jobs[0]
        future = head.future
        if future is None:
            return True
        if not future.done():
            return False
        head.future = None
        if _succeeded(future):
            head.result = future.result()
            return True
        exc = None if future.cancelled() else future.exception()
        if isinstance(exc, BrokenProcessPool) or future.cancelled():
            broken = head.executor
            assert broken is not None
            self._replace(broken, exc)
            self._recover(jobs, broken)
        else:
            self.ctx.log.error(
                events.FEATURES_FAILED, where="pool", error=repr(exc), windows=len(head.done)
            )
            self._inline(head)
        return head.future is None

    def _recover(self, jobs: deque[_Job], broken: ProcessPoolExecutor) -> None:
        """Resubmit every job whose result was lost with `broken` (once), else compute inline."""
        for job in jobs:
            if job.executor is not broken or job.result is not None:
                continue
            if job.future is not None:
                if _succeeded(job.future):
                    continue  # finished before the pool broke; keep its result
                _abandon(job.future)
                job.future = None
            self._submit(job)

    def _replace(self, broken: ProcessPoolExecutor, exc: BaseException | None) -> None:
        assert self.pool is not None
        if self.pool.replace(broken):
            self.ctx.log.warning(
                events.FEATURE_WORKER_CRASHED,
                error=repr(exc) if exc else "cancelled",
                restarts=self.pool.restarts,
            )

    def _all_inline(self, jobs: deque[_Job]) -> None:
        """`force`: stop waiting on the pool; compute what it has not delivered here, now."""
        for job in jobs:
            future = job.future
            if future is None or (_succeeded(future)):
                continue
            _abandon(future)
            job.future = None
            self._inline(job)

    def _inline(self, job: _Job) -> None:
        try:
            job.result = window_math.compute(job.done.values, job.done.ts)
        except Exception as exc:  # the readings still pass on; only these records are lost
            self.ctx.log.error(
                events.FEATURES_FAILED, where="inline", error=repr(exc), windows=len(job.done)
            )
            job.result = None

    def _emit(self, job: _Job) -> Batch | None:
        batch = job.batch
        if job.result is not None and len(job.done):
            records = self._records(job.done, job.result)
            batch.derived = [*batch.derived, *records]
            self.ctx.count_derived(len(records))
        return batch if len(batch) or batch.derived else None

    def _records(self, done: Completed, result: FloatArray) -> list[dict[str, Any]]:
        """The wire records for the windows of `done` (a Python loop per window, not reading)."""
        ids = SENSORS.ids_array()[done.sensor].tolist()
        seqs = done.end_seq.tolist()
        count = self.config.window
        names = window_math.FEATURE_NAMES
        return [
            {
                "kind": "features",
                "sensor_id": sensor_id,
                "window_end_seq": seq,
                "count": count,
                **dict(zip(names, row, strict=True)),
            }
            for sensor_id, seq, row in zip(ids, seqs, result.tolist(), strict=True)
        ]

    def _gauge(self, pending: int) -> None:
        """`pending`: pool submissions in flight; `pool_restarts`: pools replaced after a worker
        died; `submissions`: pool submissions so far (one per batch that completed windows)."""
        gauge = self.ctx.gauge()
        gauge["pending"] = pending
        gauge["workers"] = self.pool.workers if self.pool else 0
        gauge["pool_restarts"] = self.pool.restarts if self.pool else 0
        gauge["submissions"] = self.pool.submissions if self.pool else 0


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _abandon(future: asyncio.Future[Any]) -> None:
    """Stop caring about a pool result without cancelling it: cancelling would reach the
    executor's own future, and CPython 3.11's pool manager crashes when it later fails a
    cancelled future (gh-107219). Its outcome is fetched only so asyncio does not log it."""
    future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
