"""Reading an async iterator one item ahead, as a task the caller can wait on with others.

Why: `features` must wait on two things at once — the next input batch and the pool's result for
the oldest batch it holds — so that a quiet source does not hold back batches whose features are
ready, and a slow pool does not stop the stage from reading (up to its bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from daemon.batch import Batch

_END: Any = object()


class ReadAhead:
    """`next()` starts pulling the next batch in a task (or returns the pull under way);
    `take()` collects it once done. At most one pull is under way at a time."""

    def __init__(self, upstream: AsyncIterator[Batch]) -> None:
        self._upstream = upstream
        self._task: asyncio.Task[Any] | None = None
        self.exhausted = False

    def next(self) -> asyncio.Task[Any]:
        if self._task is None:
            self._task = asyncio.create_task(self._pull())
        return self._task

    async def _pull(self) -> Any:
        return await anext(self._upstream, _END)

    def take(self) -> Batch | None:
        """The batch that arrived, if any; marks `exhausted` at the end of the stream."""
        if self._task is None or not self._task.done():
            return None
        got, self._task = self._task.result(), None
        if got is _END:
            self.exhausted = True
            return None
        batch: Batch = got
        return batch

    def cancel(self) -> None:
        """Stop a pull under way (the stage is closing)."""
        if self._task is not None:
            self._task.cancel()
