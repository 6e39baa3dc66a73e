"""GuardedSink with a real in-memory sink that fails on command: breaker, spool, replay order,
exactly-once delivery, counters, restarts, force-stop and permanent rejections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from daemon.resilience import Delivery
from tests.guarded_support import ATTEMPTS, RESET_S, THRESHOLD, Harness, N, events


async def test_healthy_sink_writes_and_flushes_each_batch(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    assert h.sink.opened
    assert await h.feed(3) == ["written"] * 3
    assert h.sink.seqs() == list(range(12))
    assert h.guarded.state == "closed"
    assert h.ctx.gauge() == {
        "breaker": "closed",
        "spool_pending": 0,
        "spool_batches": 0,
        "spool_bytes": 0,
        "spool_full": 0,
        "open_since": None,
    }
    assert h.ctx.counters.reconciles()
    await h.guarded.close()
    assert h.sink.closed


async def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.fail_after = 0  # down from the next write ...

    def heal(delay: float) -> None:  # ... and back during the first backoff
        h.sink.down = False
        h.sink.fail_after = None

    h.on_sleep = heal
    assert await h.guarded.deliver(h.batch()) == Delivery("written")
    assert h.sink.attempts == 2
    assert len(h.sleeps) == 1
    assert 0 <= h.sleeps[0] <= 0.01  # base delay with full jitter
    assert h.guarded.state == "closed"
    assert h.guarded.spool.pending_batches == 0


async def test_breaker_opens_then_spool_replays_in_order_exactly_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    assert await h.feed(1) == ["written"]
    h.sink.down = True
    with capture_logs() as logs:
        assert await h.feed(THRESHOLD) == ["spooled"] * THRESHOLD
        assert h.sink.attempts == 1 + THRESHOLD * ATTEMPTS
        assert h.guarded.state == "open"
        assert await h.feed(3) == ["spooled"] * 3
        assert h.sink.attempts == 1 + THRESHOLD * ATTEMPTS  # fail fast: not even tried
    assert [(e["from"], e["to"], e["sink"]) for e in events(logs, "breaker_state_changed")] == [
        ("closed", "open", "sinks[0]")
    ]
    gauge = h.ctx.gauge()
    assert gauge["breaker"] == "open"
    assert gauge["spool_pending"] == 5 * N
    assert gauge["spool_bytes"] > 0
    assert gauge["open_since"] == h.clock.now

    h.sink.down = False
    h.clock.now += RESET_S - 0.1
    assert await h.feed(1) == ["spooled"]  # still open: the sink is not probed early
    h.clock.now += 0.1
    with capture_logs() as logs:
        assert await h.feed(1) == ["written"]
    assert h.sink.seqs() == list(range(h.next_seq))  # in order, each reading exactly once
    transitions = [(e["from"], e["to"]) for e in events(logs, "breaker_state_changed")]
    assert transitions == [("open", "half_open"), ("half_open", "closed")]
    (replayed,) = events(logs, "spool_replayed")
    assert (replayed["batches"], replayed["readings"], replayed["inherited"]) == (6, 6 * N, False)
    c = h.ctx.counters
    assert (c.spooled, c.unspooled, c.replayed, c.written) == (6 * N, 6 * N, 0, 2 * N)
    assert c.reconciles()
    assert h.ctx.gauge()["spool_pending"] == 0
    assert h.ctx.gauge()["open_since"] is None
    assert h.spool_files() == []


async def test_failed_probe_reopens_and_new_batches_queue_behind(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    await h.feed(THRESHOLD)
    h.clock.now += RESET_S
    attempts = h.sink.attempts
    assert await h.feed(1) == ["spooled"]
    assert h.sink.attempts == attempts + ATTEMPTS  # one probe (with its retries), no more
    assert h.guarded.state == "open"
    # recovered, but goes down again after two replayed batches: the rest waits, in order
    h.clock.now += RESET_S
    h.sink.down = False
    h.sink.fail_after = 2
    assert await h.feed(1) == ["spooled"]
    assert h.sink.seqs() == list(range(2 * N))
    h.sink.down = False
    h.sink.fail_after = None
    h.clock.now += RESET_S
    assert await h.guarded.maybe_replay()
    assert h.sink.seqs() == list(range(h.next_seq))
    assert h.ctx.counters.unspooled == h.ctx.counters.spooled == h.next_seq
    assert h.ctx.counters.reconciles()


async def test_maybe_replay_waits_for_the_breaker(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    assert await h.guarded.maybe_replay()  # nothing spooled
    h.sink.down = True
    await h.feed(THRESHOLD + 1)
    h.sink.down = False
    assert not await h.guarded.maybe_replay()
    assert h.sink.flushed == []
    h.clock.now += RESET_S
    assert await h.guarded.maybe_replay()
    assert h.sink.seqs() == list(range(h.next_seq))
    assert h.guarded.state == "closed"


async def test_restart_replays_inherited_spool_first_and_counts_it_replayed(
    tmp_path: Path,
) -> None:
    first = Harness(tmp_path)
    await first.guarded.open()
    first.sink.down = True
    await first.feed(3)
    await first.guarded.close()
    assert first.ctx.counters.spooled == 3 * N
    assert first.spool_files() == ["0000000000.seg"]

    second = Harness(tmp_path)  # a new process: fresh counters, same spool_dir
    with capture_logs() as logs:
        await second.guarded.open()
    assert second.sink.seqs() == list(range(3 * N))
    assert all(b.replayed for b in second.sink.flushed)
    (replayed,) = events(logs, "spool_replayed")
    assert (replayed["batches"], replayed["readings"], replayed["inherited"]) == (3, 3 * N, True)
    c = second.ctx.counters
    assert (c.replayed, c.written, c.unspooled) == (3 * N, 3 * N, 0)
    assert c.reconciles()
    second.next_seq = 100
    assert await second.feed(1) == ["written"]
    assert second.sink.seqs()[-N:] == list(range(100, 100 + N))


async def test_reload_in_the_same_run_does_not_count_own_batches_as_replayed(
    tmp_path: Path,
) -> None:
    first = Harness(tmp_path)
    await first.guarded.open()
    first.sink.down = True
    await first.feed(2)
    await first.guarded.close()
    rebuilt = Harness(tmp_path, ctx=first.ctx)  # same RunState: counters carry on
    await rebuilt.guarded.open()
    assert rebuilt.sink.seqs() == list(range(2 * N))
    c = first.ctx.counters
    assert (c.replayed, c.unspooled, c.spooled) == (0, 2 * N, 2 * N)
    assert c.reconciles()


async def test_restart_while_sink_is_still_down_keeps_order(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    await first.guarded.open()
    first.sink.down = True
    await first.feed(2)
    await first.guarded.close()
    second = Harness(tmp_path)
    second.sink.down = True
    second.next_seq = 2 * N
    await second.guarded.open()  # the inherited replay fails: nothing is lost or reordered
    assert await second.feed(2) == ["spooled", "spooled"]
    second.sink.down = False
    second.clock.now += RESET_S
    assert await second.guarded.maybe_replay()
    assert second.sink.seqs() == list(range(4 * N))
    assert [b.replayed for b in second.sink.flushed] == [True, True, False, False]
    c = second.ctx.counters
    assert (c.replayed, c.spooled, c.unspooled) == (2 * N, 2 * N, 2 * N)
    assert c.reconciles()


async def test_force_flag_spools_without_trying_the_sink(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.ctx.lifetime.force.set()
    assert await h.feed(2) == ["spooled", "spooled"]
    assert h.sink.attempts == 0
    assert not await h.guarded.maybe_replay()
    assert h.sink.attempts == 0
    await h.guarded.close()  # close does not replay either
    assert h.sink.attempts == 0
    assert h.spool_files()[0] == "0000000000.seg"


async def test_permanent_rejection_of_a_new_batch_is_not_retried(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.refuse = {1}
    assert await h.guarded.deliver(h.batch()) == Delivery("rejected", "seq [1] refused")
    assert h.sink.attempts == 1
    assert h.sleeps == []
    h.sink.refuse = set(range(1000))
    assert await h.feed(THRESHOLD + 1) == ["rejected"] * (THRESHOLD + 1)
    assert h.guarded.state == "closed"  # refusals are not sink failures
    assert h.guarded.spool.pending_batches == 0


@pytest.mark.parametrize("inherited", [True, False])
async def test_replayed_batch_refused_is_dead_lettered(tmp_path: Path, inherited: bool) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    await h.feed(3)
    if inherited:
        await h.guarded.close()
        h = Harness(tmp_path)
    h.sink.down = False
    h.sink.refuse = {N + 1}  # the second batch
    h.clock.now += RESET_S
    if inherited:
        await h.guarded.open()
    else:
        assert await h.guarded.maybe_replay()
    assert h.sink.seqs() == [*range(N), *range(2 * N, 3 * N)]
    lines = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [(d["reason"], d["source"], d["raw"]["seq"]) for d in lines] == [
        ("seq [5] refused", "sinks[0]", s) for s in range(N, 2 * N)
    ]
    c = h.ctx.counters
    if inherited:
        assert (c.replayed, c.written, c.rejected) == (3 * N, 2 * N, N)
    else:
        assert (c.spooled, c.unspooled, c.rejected) == (3 * N, 2 * N, 0)
    assert c.reconciles()


async def test_timer_replay_and_deliver_never_interleave(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.guarded.open()
    h.sink.down = True
    await h.feed(THRESHOLD)
    h.sink.down = False
    h.clock.now += RESET_S
    h.sink.gate = asyncio.Event()
    before = h.sink.attempts
    replay = asyncio.create_task(h.guarded.maybe_replay())
    await h.sink.waiting.wait()  # the replay is inside the first (probe) write
    new = asyncio.create_task(h.feed(1))
    await asyncio.sleep(0)  # let deliver() reach the lock
    assert h.sink.attempts == before + 1  # deliver() waits its turn
    h.sink.gate.set()
    assert await replay
    assert await new == ["written"]
    assert h.sink.seqs() == list(range(h.next_seq))
