"""The data path as it was before `ingestd tap`, for `benchmarks.tap_cost`'s baseline (not used
by the daemon).

`install()` puts back the two functions the tap changed: the stage wrapper without its
`point.taps` test, and the fan-out's `deliver` without the sink-tap test and the per-sink
delivery timing that `/status` reports. The benchmark runs a daemon with this installed at
interpreter start (a `sitecustomize` on `PYTHONPATH`), so "untapped" can be compared with
"before the change" in the same tree. Keep `deliver` in step with `daemon/topology/fanout.py`
minus those two additions, or the baseline measures something else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from daemon.batch import Batch
from daemon.components import Stage
from daemon.observability.health import StageStats
from daemon.resilience import SpoolCopies
from daemon.topology import fanout, flow


async def measured_before(
    stage: Stage[Any], upstream: AsyncIterator[Batch], stats: StageStats, point: Any = None
) -> AsyncIterator[Batch]:
    """`flow._measured` before the tap (`point` is accepted and ignored)."""
    handed_in = [0.0]
    count_in = [0]

    async def counted() -> AsyncIterator[Batch]:
        async for batch in upstream:
            count_in[0] += len(batch)
            handed_in[0] = time.perf_counter()
            yield batch

    async for out in stage.process(counted()):
        stats.record(count_in[0], len(out), time.perf_counter() - handed_in[0])
        count_in[0] = 0
        yield out


async def deliver_before(self: fanout.FanOut, batch: Batch) -> bool:
    """`FanOut.deliver` without the sink-tap test and the delivery timing."""
    if len(self.sinks) == 1:
        results = [await self.sinks[0].deliver(batch)]
    else:
        copies = SpoolCopies()
        results = list(await asyncio.gather(*(s.deliver(batch, copies) for s in self.sinks)))
    readers = [(s, r) for s, r in zip(self.sinks, results, strict=True) if s.takes_readings]
    counted = self._count(batch, readers)
    return counted and not any(r.outcome == "abandoned" for r in results)


def install() -> None:
    flow._measured = measured_before
    fanout.FanOut.deliver = deliver_before  # type: ignore[method-assign]
