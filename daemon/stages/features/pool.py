"""The process pool behind `features`: started warm, replaced when a worker dies.

Why a separate object: the stage's streaming loop should read as "submit, wait in order, emit";
how processes are started (forkserver, with the math module preloaded so a replacement worker is
ready in milliseconds), warmed, counted and swapped after a `BrokenProcessPool` lives here.

The forkserver and its workers die with the daemon, and the workers ignore Ctrl-C
(`daemon.lifeline`): the forkserver preloads that module first, and every worker runs its
initializer, given the daemon's pid.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext

from daemon import lifeline
from daemon.batch import FloatArray
from daemon.stages.features import window_math


def _context() -> BaseContext:
    """forkserver: workers fork from a clean server process, never from the daemon itself (which
    runs threads and an event loop); preloading the math module makes each fork start warm.
    `lifeline` comes first: importing it is how the forkserver learns to die with the daemon."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([lifeline.__name__, window_math.__name__])
    return ctx


class FeaturePool:
    """A `ProcessPoolExecutor` of `workers` processes that can be replaced when it breaks."""

    def __init__(self, workers: int, window: int) -> None:
        if workers < 1:
            raise ValueError(f"a feature pool needs >= 1 worker, got {workers}")
        self.workers = workers
        self.window = window
        self.restarts = 0  # pools replaced after a worker died
        self.submissions = 0  # compute calls handed to a pool (one per batch with windows)
        self._executor: ProcessPoolExecutor | None = None

    @property
    def executor(self) -> ProcessPoolExecutor:
        """The current pool, created on first use if `start()` was not awaited."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=_context(),
                initializer=lifeline.pool_worker_init,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def start(self) -> None:
        """Create the pool and wait until every worker has run the math once, so the first
        batch does not pay for process start-up and imports."""
        executor = self.executor
        # The pool spawns a worker per submission while none is idle: `workers` concurrent
        # warm-ups start them all.
        warm = [
            asyncio.wrap_future(executor.submit(window_math.warm_up, self.window))
            for _ in range(self.workers)
        ]
        await asyncio.gather(*warm)

    def submit(
        self, values: FloatArray, ts: FloatArray
    ) -> tuple[ProcessPoolExecutor, asyncio.Future[FloatArray]]:
        """Hand one stack of windows to the pool; returns the pool used (to recognise its breakage
        later) and an awaitable result. Raises `BrokenProcessPool` if the pool already broke."""
        executor = self.executor
        future = asyncio.wrap_future(executor.submit(window_math.compute, values, ts))
        self.submissions += 1
        return executor, future

    def replace(self, broken: ProcessPoolExecutor) -> bool:
        """Swap in a fresh pool if `broken` is still the current one; False if already done.
        The broken pool's manager fails its remaining futures itself; nothing is cancelled
        (see `close`)."""
        if broken is not self._executor:
            return False
        self._executor = None
        broken.shutdown(wait=False)
        self.restarts += 1
        return True

    async def close(self, *, wait: bool) -> None:
        """Shut the pool down. With `wait`, let queued computations finish (off the loop).
        Without (a forced exit), kill the workers so that nothing — not even a hung worker —
        holds up interpreter exit, which joins the pool's manager thread. Futures are never
        cancelled: CPython 3.11's manager crashes when it later fails a cancelled future
        (gh-107219); killed workers make it fail them all with `BrokenProcessPool` instead."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if wait:
            await asyncio.to_thread(executor.shutdown, wait=True)
            return
        for process in list((executor._processes or {}).values()):  # no public way to kill
            process.kill()
        executor.shutdown(wait=False)

    def worker_pids(self) -> list[int]:
        """Pids of the current pool's live workers (for logs, and for tests that kill one)."""
        if self._executor is None:
            return []
        processes = self._executor._processes or {}  # no public accessor exists
        return [p for p in processes if p is not None]
