"""Issue 9's doubled counters: two guarded sinks behind a fan-out, both spooling (a forced
shutdown), both replaying — after a restart and within the run. A reading counts once."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from daemon.topology.fanout import FanOut
from tests.guarded_support import RESET_S, Harness, N, events, sharing
from tests.support import TestContext


def two_sinks(tmp_path: Path, ctx: TestContext | None = None) -> tuple[Harness, Harness, FanOut]:
    a = Harness(tmp_path, ctx, spool="spool-a")
    b = Harness(tmp_path, sharing(a.ctx, "sinks[1]"), spool="spool-b")
    return a, b, FanOut([a.guarded, b.guarded], a.ctx.state)


async def feed(a: Harness, fanout: FanOut, batches: int) -> None:
    for _ in range(batches):
        batch = a.batch()
        a.ctx.counters.read += len(batch)
        await fanout.deliver(batch)


async def test_a_forced_spool_of_two_sinks_replays_each_reading_once(tmp_path: Path) -> None:
    a, b, fanout = two_sinks(tmp_path)
    for h in (a, b):
        await h.guarded.open()
    a.ctx.lifetime.force.set()  # the second SIGTERM: both sinks spool what is in flight
    await feed(a, fanout, 5)
    for h in (a, b):
        await h.guarded.close()
    first = a.ctx.counters
    assert (first.read, first.spooled, first.written) == (5 * N, 5 * N, 0)
    assert first.reconciles()
    assert a.guarded.spool.pending_readings == b.guarded.spool.pending_readings == 5 * N

    a2, b2, _ = two_sinks(tmp_path)  # the restart: fresh counters, the same spools
    with capture_logs() as logs:
        for h in (a2, b2):
            await h.guarded.open()
    expected = list(range(5 * N))
    assert a2.sink.seqs() == b2.sink.seqs() == expected  # each sink gets every reading
    c = a2.ctx.counters
    assert (c.replayed, c.written) == (5 * N, 5 * N)  # not 10 * N
    assert c.reconciles()
    replayed = events(logs, "spool_replayed")
    assert sorted((e["sink"], e["readings"], e["copies"]) for e in replayed) == [
        ("sinks[0]", 5 * N, 0),
        ("sinks[1]", 5 * N, 5 * N),
    ]


async def test_both_sinks_down_then_back_within_the_run_unspool_once(tmp_path: Path) -> None:
    a, b, fanout = two_sinks(tmp_path)
    for h in (a, b):
        await h.guarded.open()
        h.sink.down = True
    await feed(a, fanout, 3)
    for h in (a, b):
        h.sink.down = False
        h.clock.now += RESET_S
    await fanout.replay_idle()
    c = a.ctx.counters
    assert (c.spooled, c.unspooled) == (3 * N, 3 * N)  # not 6 * N
    assert a.sink.seqs() == b.sink.seqs() == list(range(3 * N))
    assert c.reconciles()


async def test_one_sink_down_spools_the_counted_copy_alone(tmp_path: Path) -> None:
    a, b, fanout = two_sinks(tmp_path)
    for h in (a, b):
        await h.guarded.open()
    b.sink.down = True
    await feed(a, fanout, 2)
    for h in (a, b):
        await h.guarded.close()
    assert a.guarded.spool.pending_readings == 0
    a2, b2, _ = two_sinks(tmp_path)
    for h in (a2, b2):
        await h.guarded.open()
    assert b2.sink.seqs() == list(range(2 * N))
    c = a2.ctx.counters
    assert (c.replayed, c.written) == (2 * N, 2 * N)
    assert c.reconciles()


async def test_an_abandoned_batch_stays_in_flight_and_is_not_taken(tmp_path: Path) -> None:
    a, b, fanout = two_sinks(tmp_path)
    for h in (a, b):
        await h.guarded.open()
        h.sink.down = True
    b.guarded.spool.append_payload = _no_space  # type: ignore[method-assign]
    a.ctx.lifetime.force.set()
    batch = a.batch()
    a.ctx.counters.read += len(batch)
    assert await fanout.deliver(batch) is False
    c = a.ctx.counters
    assert (c.spooled, c.abandoned, c.in_flight) == (0, N, N)


def _no_space(payload: bytes, *, over_cap: bool = False) -> None:
    raise OSError(28, "No space left on device")
