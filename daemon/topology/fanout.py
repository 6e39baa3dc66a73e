"""Deliver each batch to every sink and count each reading exactly once.

A reading is `written` when every sink acknowledged it, `spooled` when any sink had to park it
in its spool, and `rejected` when any sink refused it permanently (then it is dead-lettered once,
with the reason). Derived records (features) ride along and are not readings.

With several sinks, each delivery gets the batch's `SpoolCopies`: the first sink to spool it
writes the counted copy and the others mark theirs `copy`, so that replays (one per sink) count
each reading once, as it was counted here once (`daemon/resilience/copies.py`).

A batch abandoned by a sink (a forced exit with its spool full and the sink down) is counted
`abandoned` and nothing else: it stays in flight, the only loss allowed. `deliver` returns False
for it, so that the caller does not tell its source the batch was taken.
"""

from __future__ import annotations

import asyncio

import structlog

from daemon.batch import Batch
from daemon.deadletter import DeadLetterEntry
from daemon.observability import events
from daemon.resilience import Delivery, GuardedSink, SpoolCopies
from daemon.runtime import RunState

log = structlog.get_logger("fanout")


class FanOut:
    def __init__(self, sinks: list[GuardedSink], state: RunState) -> None:
        self.sinks = sinks
        self.state = state

    async def deliver(self, batch: Batch) -> bool:
        """Deliver `batch` to every sink and count it; False if it was abandoned (not taken)."""
        if len(self.sinks) == 1:
            results = [await self.sinks[0].deliver(batch)]
        else:
            copies = SpoolCopies()
            results = list(await asyncio.gather(*(s.deliver(batch, copies) for s in self.sinks)))
        return self._count(batch, results)

    def _count(self, batch: Batch, results: list[Delivery]) -> bool:
        n = len(batch)
        if n == 0:
            return True
        counters = self.state.counters
        rejected = [r for r in results if r.outcome == "rejected"]
        if rejected:
            reason = rejected[0].reason or "rejected by sink"
            labels = [s.label for s, r in zip(self.sinks, results, strict=True) if r is rejected[0]]
            self.state.dead_letter.write_all(
                DeadLetterEntry(reason, labels[0], record) for record in batch.to_records()
            )
            counters.rejected += n
            log.warning(events.SINK_REJECTED, sink=labels[0], readings=n, reason=reason)
        elif any(r.outcome == "abandoned" for r in results):
            counters.abandoned += n  # still in flight: neither written nor spooled
            return False
        elif any(r.outcome == "spooled" for r in results):
            counters.spooled += n
        else:
            counters.written += n
            self.state.latency.record(batch.ts)  # end-to-end: reading taken -> acknowledged
        return True

    async def replay_idle(self) -> None:
        """Give each sink a chance to replay its spool when no new data is arriving (each
        guarded sink serialises this with its own deliveries)."""
        for sink in self.sinks:
            await sink.maybe_replay()
