"""The sink's way to the server: an asyncpg pool, and the one connection writes use, held from
write to write.

Why hold it instead of acquiring per batch: the guard runs one write at a time, so a write
never needs a second connection, while acquiring and releasing a pooled connection costs, per
batch, a task for the acquire's deadline, a task for the release's shield and a reset query (a
round trip). Each of those is a turn of the event loop, which in the daemon is shared with the
sources and the stages: a turn that waits behind their work leaves the server idle between two
COPYs (measured: `benchmarks/postgres_copy.py --mode daemon`). Held, a batch costs its COPY.

A connection that failed is dropped (terminated) and a new one acquired on the next write: the
pool reconnects. Dropping never awaits, so it is safe where a write is being cancelled; the
dropped connection goes back to the pool on the next acquire or at close. `pool_size` still
bounds the connections the pool may open; the table setup uses the held connection too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from daemon.config.types import Secret


class Link:
    def __init__(
        self,
        dsn: Secret,
        *,
        pool_size: int,
        timeout_s: float,
        application_name: str,
        init: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._application_name = application_name
        self._init = init
        self._pool: Any = None  # asyncpg.Pool, made by the first `connection()`
        self._held: Any = None  # the pooled connection writes use
        self._dropped: list[Any] = []  # terminated, to hand back to the pool
        self._lock = asyncio.Lock()

    @property
    def holding(self) -> bool:
        return self._held is not None

    async def connection(self) -> Any:
        """The held connection, connecting (and creating the pool) first if needed."""
        if self._held is not None:
            return self._held
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn.reveal(),
                    # 0: no background task restoring a floor of connections, which during an
                    # outage retries and logs a traceback on its own, apart from the writes
                    min_size=0,
                    max_size=self._pool_size,
                    timeout=self._timeout_s,
                    server_settings={"application_name": self._application_name},
                    init=self._init,
                )
            await self._hand_back()
            if self._held is None:
                self._held = await self._pool.acquire(timeout=self._timeout_s)
        return self._held

    def drop(self) -> None:
        """Give the held connection up for good (after a failure, or a write cut short)."""
        conn, self._held = self._held, None
        if conn is not None:
            with contextlib.suppress(asyncpg.InterfaceError):  # the server dropped it: released
                conn.terminate()
            self._dropped.append(conn)

    async def close(self) -> None:
        """Hand the connection back and close the pool within the timeout, else terminate."""
        pool, self._pool = self._pool, None
        if self._held is not None:
            self._dropped.append(self._held)
            self._held = None
        if pool is None:
            return
        try:
            await self._hand_back(pool)
            await asyncio.wait_for(pool.close(), timeout=self._timeout_s)
        except BaseException:
            pool.terminate()
            raise

    async def _hand_back(self, pool: Any = None) -> None:
        pool = pool or self._pool
        while self._dropped:
            conn = self._dropped.pop()
            with contextlib.suppress(asyncpg.InterfaceError):  # released already
                await asyncio.wait_for(pool.release(conn), timeout=self._timeout_s)
