"""Fan-out counts each reading once; a permanent refusal is dead-lettered, counted and logged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from structlog.testing import capture_logs

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink
from daemon.config.loader import SinkResilience
from daemon.resilience import GuardedSink
from daemon.topology.fanout import FanOut
from tests.support import TestContext


class Refusing(Sink[None]):
    async def write(self, batch: Batch) -> None:
        raise PermanentSinkError("schema mismatch")


class Keeping(Sink[None]):
    def __init__(self, ctx: TestContext) -> None:
        super().__init__(None, ctx)
        self.kept = 0

    async def write(self, batch: Batch) -> None:
        self.kept += len(batch)


async def test_a_refused_batch_is_rejected_once_for_all_sinks(tmp_path: Path) -> None:
    ctx = TestContext("sinks[0]", str(tmp_path / "dead-letter.jsonl"))
    other = TestContext("sinks[1]")
    other.state = ctx.state
    keeping = Keeping(ctx)
    sinks = [
        GuardedSink(
            Refusing(None, ctx),
            SinkResilience(spool_dir=str(tmp_path / "a")),
            ctx.state,
            ctx.lifetime,
        ),
        GuardedSink(
            keeping, SinkResilience(spool_dir=str(tmp_path / "b")), ctx.state, ctx.lifetime
        ),
    ]
    for s in sinks:
        await s.open()
    fanout = FanOut(sinks, ctx.state)
    batch = Batch.of_sensor("FANOUT01", np.arange(5), 1.7e9 + np.arange(5), np.full(5, 20.0))
    with capture_logs() as logs:
        await fanout.deliver(batch)
    for s in sinks:
        await s.close()
    c = ctx.state.counters
    assert (c.rejected, c.written, c.spooled) == (5, 0, 0)
    assert keeping.kept == 5  # the other sink took them; the reading still counts rejected once
    lines = [json.loads(x) for x in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and {x["reason"] for x in lines} == {"schema mismatch"}
    (event,) = [e for e in logs if e["event"] == "sink_rejected"]
    assert event["readings"] == 5 and event["sink"] == "sinks[0]"
