"""A sink that refuses single rows and takes the rest (`RowsRefused`): only those rows are
dead-lettered (with the sink's reason) and counted `rejected`, the rest `written` (or `spooled`),
each reading once: on a direct write, on a replay of this run's spool, on a replay of an earlier
run's spool, and with two sinks refusing different rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.components import RowsRefused, SinkError
from daemon.config.loader import BreakerConfig, RetryConfig, SinkResilience
from daemon.resilience import GuardedSink
from daemon.topology.fanout import FanOut
from tests.guarded_support import Clock, MemorySink, events, sharing
from tests.support import TestContext

N = 6  # readings per batch


class PartialSink(MemorySink):
    """Takes every row but those whose seq is in `refuse_rows`; says which it refused, and why,
    once the others are flushed (what `RowsRefused` promises)."""

    def __init__(self, ctx: TestContext) -> None:
        super().__init__(ctx)
        self.refuse_rows: set[int] = set()

    async def write(self, batch: Batch) -> None:
        self.attempts += 1
        if self.down:
            raise SinkError("connection refused")
        refused = {
            i: f"seq {s} out of range"
            for i, s in enumerate(batch.seq.tolist())
            if s in self.refuse_rows
        }
        keep = np.ones(len(batch), dtype=np.bool_)
        keep[list(refused)] = False
        self._buffer.append(batch.select(keep))
        await self.flush()
        if refused:
            raise RowsRefused(refused)


class Rig:
    """Guarded partial sinks sharing one run state, behind a fan-out, as the topology has them."""

    def __init__(self, tmp_path: Path, sinks: int = 1, ctx: TestContext | None = None) -> None:
        self.ctx = ctx or TestContext("sinks[0]", str(tmp_path / "dead.jsonl"))
        self.clock = Clock()
        self.sinks: list[PartialSink] = []
        self.guarded: list[GuardedSink] = []
        for i in range(sinks):
            sink_ctx = self.ctx if i == 0 else sharing(self.ctx, f"sinks[{i}]")
            sink = PartialSink(sink_ctx)
            config = SinkResilience(
                retry=RetryConfig(attempts=2, base_delay_s=0.0, max_delay_s=0.1),
                breaker=BreakerConfig(failure_threshold=1, reset_timeout_s=5.0),
                spool_dir=str(tmp_path / f"spool-{i}"),
            )
            self.sinks.append(sink)
            self.guarded.append(
                GuardedSink(sink, config, self.ctx.state, self.ctx.lifetime, clock=self.clock)
            )
        self.fanout = FanOut(self.guarded, self.ctx.state)
        self.next_seq = 0

    async def open(self) -> None:
        for g in self.guarded:
            await g.open()

    async def close(self) -> None:
        for g in self.guarded:
            await g.close()

    async def feed(self) -> Batch:
        seq = np.arange(self.next_seq, self.next_seq + N)
        self.next_seq += N
        batch = Batch.of_sensor("R-1", seq, seq + 1.7e9, seq * 2.0, unit="kPa")
        self.ctx.counters.read += N
        assert await self.fanout.deliver(batch)
        return batch

    def dead_letters(self) -> list[dict[str, Any]]:
        path = Path(self.ctx.state.dead_letter.path)
        return (
            [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []
        )


async def test_only_the_refused_row_is_dead_lettered_the_rest_is_written(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.open()
    rig.sinks[0].refuse_rows = {2}
    with capture_logs() as logs:
        await rig.feed()
    assert rig.sinks[0].seqs() == [0, 1, 3, 4, 5]
    [entry] = rig.dead_letters()
    assert (entry["reason"], entry["source"], entry["raw"]["seq"]) == (
        "seq 2 out of range",
        "sinks[0]",
        2,
    )
    c = rig.ctx.counters
    assert (c.read, c.written, c.rejected, c.spooled) == (N, N - 1, 1, 0)
    assert c.reconciles()
    [rejected] = events(logs, "sink_rejected")
    assert (rejected["readings"], rejected["of"]) == (1, N)
    assert rig.guarded[0].state == "closed"  # a refusal says nothing about the sink's health
    await rig.feed()  # and the next batch goes the normal way
    assert (c.written, c.rejected) == (2 * N - 1, 1)
    await rig.close()


async def test_two_sinks_refusing_different_rows_count_each_row_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, sinks=2)
    await rig.open()
    rig.sinks[0].refuse_rows = {1}
    rig.sinks[1].refuse_rows = {1, 4}
    await rig.feed()
    assert sorted((e["raw"]["seq"], e["source"]) for e in rig.dead_letters()) == [
        (1, "sinks[0]"),
        (4, "sinks[1]"),
    ]
    c = rig.ctx.counters
    assert (c.written, c.rejected) == (N - 2, 2)
    assert c.reconciles()
    await rig.close()


async def test_a_replay_of_this_runs_spool_dead_letters_only_the_refused_rows(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.open()
    rig.sinks[0].down = True
    await rig.feed()  # spooled, counted spooled
    rig.sinks[0].down = False
    rig.sinks[0].refuse_rows = {3}
    rig.clock.now += 5.0
    with capture_logs() as logs:
        assert await rig.guarded[0].maybe_replay()
    assert rig.sinks[0].seqs() == [0, 1, 2, 4, 5]
    assert [e["raw"]["seq"] for e in rig.dead_letters()] == [3]
    [replayed] = events(logs, "spool_replayed")
    assert (replayed["batches"], replayed["readings"], replayed["rejected"]) == (1, N - 1, 1)
    c = rig.ctx.counters
    # counted once, as `spooled`, when it was parked; its delivery adds `unspooled` only
    assert (c.spooled, c.unspooled, c.written, c.rejected) == (N, N - 1, 0, 0)
    assert c.reconciles()
    await rig.close()


async def test_a_replay_of_an_earlier_runs_spool_counts_written_and_rejected(
    tmp_path: Path,
) -> None:
    first = Rig(tmp_path)
    await first.open()
    first.sinks[0].down = True
    await first.feed()
    await first.close()
    second = Rig(tmp_path, ctx=TestContext("sinks[0]", str(tmp_path / "dead.jsonl")))
    second.sinks[0].refuse_rows = {0, 5}
    await second.open()  # replays what the first run left before any new data
    assert second.sinks[0].seqs() == [1, 2, 3, 4]
    c = second.ctx.counters
    assert (c.replayed, c.written, c.rejected) == (N, N - 2, 2)
    assert c.reconciles()
    assert [e["raw"]["seq"] for e in second.dead_letters()] == [0, 5]
    await second.close()
