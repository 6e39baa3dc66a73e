"""What the guarded-sink tests share: an in-memory sink that fails on command, a fake clock,
and a harness doing what the topology would (count the outcome of each new batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError
from daemon.config.loader import BreakerConfig, RetryConfig, SinkResilience
from daemon.resilience import GuardedSink
from tests.support import TestContext

N = 4  # readings per test batch
THRESHOLD = 2
ATTEMPTS = 3
RESET_S = 5.0


class MemorySink(Sink[None]):
    """Keeps flushed batches in memory. `down` makes every write fail (retryable);
    `refuse` holds seqs it rejects permanently; `fail_after` lets that many more writes succeed
    before it goes down."""

    def __init__(self, ctx: TestContext) -> None:
        super().__init__(None, ctx)
        self.down = False
        self.refuse: set[int] = set()
        self.fail_after: int | None = None
        self.attempts = 0
        self.flushed: list[Batch] = []
        self._buffer: list[Batch] = []
        self.opened = self.closed = False
        self.gate: asyncio.Event | None = None  # when set up, writes wait for it
        self.waiting = asyncio.Event()  # set while a write waits at the gate

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def write(self, batch: Batch) -> None:
        self.attempts += 1
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.down = True
            self.fail_after -= 1
        if self.down:
            raise SinkError("connection refused")
        refused = self.refuse.intersection(batch.seq.tolist())
        if refused:
            raise PermanentSinkError(f"seq {sorted(refused)} refused")
        self._buffer.append(batch)

    async def flush(self) -> None:
        self.flushed.extend(self._buffer)
        self._buffer.clear()

    def seqs(self) -> list[int]:
        return [int(s) for b in self.flushed for s in b.seq]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A guarded sink plus what the topology would do: count the outcome of new batches."""

    def __init__(
        self,
        tmp_path: Path,
        ctx: TestContext | None = None,
        *,
        spool: str = "spool",
        **resilience: Any,
    ) -> None:
        self.ctx: TestContext = ctx or TestContext("sinks[0]", str(tmp_path / "dead.jsonl"))
        self.sink = MemorySink(self.ctx)
        self.clock = Clock()
        self.sleeps: list[float] = []
        config = SinkResilience(
            retry=RetryConfig(attempts=ATTEMPTS, base_delay_s=0.01, max_delay_s=0.1),
            breaker=BreakerConfig(failure_threshold=THRESHOLD, reset_timeout_s=RESET_S),
            spool_dir=str(tmp_path / spool),
            **resilience,
        )
        self.guarded = GuardedSink(
            self.sink,
            config,
            self.ctx.state,
            self.ctx.lifetime,
            clock=self.clock,
            sleep=self._sleep,
        )
        self.next_seq = 0
        self.on_sleep: Callable[[float], None] | None = None  # runs at each (fake) sleep

    async def _sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.on_sleep is not None:
            self.on_sleep(delay)

    def batch(self) -> Batch:
        seq = np.arange(self.next_seq, self.next_seq + N)
        self.next_seq += N
        return Batch.of_sensor("G-1", seq, seq + 1.7e9, seq * 2.0, unit="kPa")

    async def feed(self, count: int = 1) -> list[str]:
        outcomes: list[str] = []
        for _ in range(count):
            batch = self.batch()
            self.ctx.counters.read += N
            delivery = await self.guarded.deliver(batch)
            c = self.ctx.counters
            if delivery.outcome == "written":
                c.written += N
            elif delivery.outcome == "spooled":
                c.spooled += N
            else:
                c.rejected += N
            outcomes.append(delivery.outcome)
        return outcomes

    def spool_files(self) -> list[str]:
        """Segment files in the spool directory."""
        spool_dir = self.guarded.spool.directory
        return sorted(p.name for p in spool_dir.iterdir() if p.suffix in {".seg", ".open"})


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def sharing(first: TestContext, label: str) -> TestContext:
    """A context for a second sink of the same run: `first`'s state, lifetime and tokens."""
    ctx = TestContext(label)
    ctx.state = first.state
    ctx._state = first.state
    ctx.lifetime = first.lifetime
    ctx.stop = first.stop
    ctx.force = first.force
    return ctx
