"""Calling a sink with a deadline, cut at once by the generation's force token.

Why every call has a deadline: a sink whose write never returns (a FIFO nobody reads, a server
that accepted the connection and went silent) would hold the sink loop, hence the stages and the
sources, forever, and no retry, breaker or spool would ever get a say. So each write+flush, and
the sink's open, flush and close, runs under `asyncio.timeout(write_timeout_s)`. Past it the call
is cancelled and `WriteTimeout` (a `SinkError`) is raised; the guarded sink opens the breaker and
spools. A force stop reschedules the deadline to now, so a forced exit never waits on a write.

Why cancellation is enough to return on time: a write blocked in a thread (aiofiles) is awaited
through a future, and cancelling the await returns at once even though the thread stays blocked
in the kernel. That thread cannot be stopped by anyone; see `GuardedSink` for what that leaves
behind. A sink's write must let `CancelledError` through (never swallow it, never await more
blocking work in a `finally`), or no deadline can help.

Why a timeout is not retried at once: retries bridge errors that clear in milliseconds; a call
that took `write_timeout_s` is stuck, another try would wait as long again and, through a thread,
stack a second blocked write behind the first. It is retried later, as the breaker's probe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError
from daemon.config.loader import RetryConfig
from daemon.resilience.retry import retry_call


class WriteTimeout(SinkError):
    """A sink call ran past `write_timeout_s` and was cancelled."""


class Forced(Exception):
    """The force token was set: the sink is not to be tried any more in this generation."""


class SinkCalls:
    def __init__(
        self,
        sink: Sink[Any],
        retry: RetryConfig,
        timeout_s: float,
        force: asyncio.Event,
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.sink = sink
        self.timeout_s = timeout_s
        self._retry = retry
        self._force = force
        self._sleep = sleep
        self._deadline: asyncio.Timeout | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def write(self, batch: Batch) -> None:
        """write + flush, retried per the retry config. Raises `PermanentSinkError` at once,
        `WriteTimeout` at once (see the module doc), `Forced` when force is set, else the last
        `SinkError` once attempts run out."""
        r = self._retry
        await retry_call(
            partial(self._once, batch),
            attempts=r.attempts,
            base_delay_s=r.base_delay_s,
            max_delay_s=r.max_delay_s,
            jitter=r.jitter,
            give_up_on=(PermanentSinkError, WriteTimeout),
            sleep=self.pause,
        )

    async def last_chance(self, batch: Batch, timeout_s: float) -> None:
        """One write + flush that the force token does not cut (a forced exit whose spool is
        full tries the sink once more before giving the batch up), within `timeout_s`."""
        await self.bounded(
            self._write_flush(batch), "write", cut_by_force=False, timeout_s=timeout_s
        )

    async def bounded(
        self,
        call: Coroutine[Any, Any, None],
        what: str,
        *,
        cut_by_force: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """Await `call` within the deadline; `Forced` if force cuts it (`cut_by_force`)."""
        if cut_by_force and self._force.is_set():
            call.close()
            raise Forced
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit) as deadline:
                if cut_by_force:
                    self._deadline = deadline
                    self._watch()
                await call
        except TimeoutError:
            if cut_by_force and self._force.is_set():
                raise Forced from None
            if deadline.expired():
                raise WriteTimeout(f"{what} took longer than {limit:g} s; cancelled") from None
            raise SinkError(f"{what} timed out inside the sink") from None
        finally:
            self._deadline = None

    async def pause(self, delay: float) -> None:
        """Sleep `delay` (the injected sleep), ending early when force is set."""
        if self._force.is_set() or delay <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        forced = asyncio.ensure_future(self._force.wait())
        try:
            await asyncio.wait({sleeper, forced}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, forced):
                task.cancel()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _once(self, batch: Batch) -> None:
        await self.bounded(self._write_flush(batch), "write")

    async def _write_flush(self, batch: Batch) -> None:
        await self.sink.write(batch)
        await self.sink.flush()

    def _watch(self) -> None:
        """One task per sink waits for force and moves the running call's deadline to now."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._on_force())

    async def _on_force(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._force.wait()
            if self._deadline is not None:
                self._deadline.reschedule(asyncio.get_running_loop().time())
