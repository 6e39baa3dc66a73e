"""`kinds` in front of each guarded sink: the part it is handed, spooled and replayed as that
part, and counted once: a sink without readings acknowledges them trivially and never carries
the count of a spooled batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from daemon.batch import Batch
from daemon.components import PermanentSinkError
from daemon.config.loader import SinkResilience
from daemon.resilience import GuardedSink
from daemon.resilience.kinds import Taking
from daemon.topology.fanout import FanOut
from daemon.wire.encode import WIRE, encode_batch, wire_bytes
from tests.guarded_support import RESET_S, Harness, MemorySink, sharing
from tests.support import TestContext

ALERT = {"kind": "alert", "sensor_id": "KIND-1", "state": "firing", "rule": "hot", "value": 99.5}
FEATURES = {"kind": "features", "sensor_id": "KIND-1", "window_end_seq": 3, "mean": 1.5}


def batch(first: int = 0, n: int = 4, derived: tuple[dict[str, Any], ...] = ()) -> Batch:
    seq = np.arange(first, first + n)
    b = Batch.of_sensor("KIND-1", seq, seq + 1.7e9, seq * 2.0, unit="kPa")
    b.derived = list(derived)
    return b


def encoded_ahead(b: Batch) -> Batch:
    """What the encoder child leaves on a batch: its wire bytes, as a memoryview."""
    b.remember(WIRE, memoryview(encode_batch(b)))
    return b


def test_a_sink_of_every_kind_gets_the_batch_itself() -> None:
    b = batch(derived=(ALERT, FEATURES))
    assert Taking(("reading", "features", "alert")).part(b) is b


def test_a_readings_part_keeps_the_rows_and_reuses_their_encoded_lines() -> None:
    b = encoded_ahead(batch(derived=(FEATURES, ALERT)))
    part = Taking(("reading", "alert")).part(b)
    assert part is not None and part is not b
    assert part.sensor is b.sensor and part.derived == [ALERT]
    carried = wire_bytes(part)
    assert carried is not None
    assert bytes(carried) == encode_batch(part)  # the readings' lines, then its own alert
    only = Taking(("reading",)).part(b)
    assert only is not None and only.derived == []
    assert bytes(wire_bytes(only) or b"") == encode_batch(only)


def test_bytes_whose_tail_is_not_the_derived_records_are_not_reused() -> None:
    b = batch(derived=(FEATURES,))
    b.remember(WIRE, memoryview(encode_batch(batch())))  # bytes without the features line
    part = Taking(("reading",)).part(b)
    assert part is not None and wire_bytes(part) is None  # the sink encodes it itself


def test_an_alerts_part_has_no_rows_and_nothing_is_no_part() -> None:
    taking = Taking(("alert",))
    part = taking.part(encoded_ahead(batch(derived=(FEATURES, ALERT))))
    assert part is not None and len(part) == 0 and part.derived == [ALERT]
    assert wire_bytes(part) is None
    assert encode_batch(part) == json.dumps(ALERT, separators=(",", ":")).encode() + b"\n"
    assert taking.part(batch(derived=(FEATURES,))) is None
    assert Taking(("reading",)).part(batch(n=0, derived=(ALERT,))) is None


def two_sinks(tmp_path: Path, ctx: TestContext | None = None) -> tuple[Harness, Harness, FanOut]:
    """An alerts-only sink listed first (its deliveries start first), then a readings-only one."""
    alerts = Harness(tmp_path, ctx, spool="spool-alerts", kinds=("alert",))
    readings = Harness(tmp_path, sharing(alerts.ctx, "sinks[1]"), spool="spool-readings")
    readings.guarded.taking = Taking(("reading",))
    return alerts, readings, FanOut([alerts.guarded, readings.guarded], alerts.ctx.state)


async def deliver(fanout: FanOut, h: Harness, b: Batch) -> bool:
    h.ctx.counters.read += len(b)
    return await fanout.deliver(b)


async def test_a_batch_with_nothing_for_a_sink_is_not_handed_to_it(tmp_path: Path) -> None:
    alerts, readings, fanout = two_sinks(tmp_path)
    for h in (alerts, readings):
        await h.guarded.open()
    assert await deliver(fanout, alerts, batch(derived=(FEATURES,)))
    assert alerts.sink.attempts == 0
    assert readings.sink.seqs() == [0, 1, 2, 3] and readings.sink.flushed[0].derived == []
    c = alerts.ctx.counters
    assert (c.written, c.spooled) == (4, 0) and c.reconciles()


async def test_an_alerts_sink_down_spools_its_alerts_and_the_readings_are_written(
    tmp_path: Path,
) -> None:
    alerts, readings, fanout = two_sinks(tmp_path)
    for h in (alerts, readings):
        await h.guarded.open()
    alerts.sink.down = True
    assert await deliver(fanout, alerts, batch(0, derived=(ALERT, FEATURES)))
    c = alerts.ctx.counters
    assert (c.written, c.spooled) == (4, 0)  # the only sink that takes readings has them
    assert alerts.guarded.spool.pending_batches == 1
    assert alerts.guarded.spool.pending_readings == 0
    alerts.sink.down = False
    alerts.clock.now += RESET_S
    assert await alerts.guarded.maybe_replay()
    (replayed,) = alerts.sink.flushed
    assert len(replayed) == 0 and replayed.derived == [ALERT]
    assert (c.written, c.spooled, c.unspooled) == (4, 0, 0) and c.reconciles()


async def test_both_down_the_readings_sink_carries_the_count_into_the_replay(
    tmp_path: Path,
) -> None:
    alerts, readings, fanout = two_sinks(tmp_path)
    for h in (alerts, readings):
        await h.guarded.open()
        h.sink.down = True
    for first in (0, 4):
        await deliver(fanout, alerts, batch(first, derived=(ALERT,)))
    for h in (alerts, readings):
        await h.guarded.close()
    assert alerts.ctx.counters.spooled == 8

    alerts2, readings2, _ = two_sinks(tmp_path)  # a restart: fresh counters, the same spools
    for h in (alerts2, readings2):
        await h.guarded.open()
    assert readings2.sink.seqs() == list(range(8))
    assert [b.derived for b in readings2.sink.flushed] == [[], []]
    assert [(len(b), b.derived) for b in alerts2.sink.flushed] == [(0, [ALERT])] * 2
    c = alerts2.ctx.counters
    assert (c.replayed, c.written) == (8, 8)  # not 0: the alerts' spool held no count
    assert c.reconciles()


async def test_a_refused_alerts_part_is_dead_lettered_and_not_counted(tmp_path: Path) -> None:
    class RefusingAlerts(MemorySink):
        async def write(self, batch: Batch) -> None:
            raise PermanentSinkError("no such topic")

    ctx = TestContext("sinks[0]", str(tmp_path / "dead.jsonl"))
    resilience = SinkResilience(spool_dir=str(tmp_path / "spool"), kinds=("alert",))
    guarded = GuardedSink(RefusingAlerts(ctx), resilience, ctx.state, ctx.lifetime)
    await guarded.open()
    delivery = await guarded.deliver(batch(derived=(ALERT, FEATURES)))
    await guarded.close()
    assert delivery.outcome == "rejected"
    (entry,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert entry["reason"] == "no such topic" and entry["raw"] == ALERT
    assert ctx.counters.rejected == 0  # an alert is not a reading


async def test_an_alerts_part_abandoned_leaves_the_batch_not_taken(tmp_path: Path) -> None:
    alerts, readings, fanout = two_sinks(tmp_path)
    for h in (alerts, readings):
        await h.guarded.open()
    alerts.sink.down = True
    alerts.guarded.spool.append_payload = _no_space  # type: ignore[method-assign]
    alerts.ctx.lifetime.force.set()  # a forced exit: the readings sink spools, alerts nowhere
    assert await deliver(fanout, alerts, batch(derived=(ALERT,))) is False
    c = alerts.ctx.counters
    assert (c.spooled, c.abandoned) == (4, 0) and c.reconciles()


def _no_space(payload: bytes, *, over_cap: bool = False) -> None:
    raise OSError(28, "No space left on device")
