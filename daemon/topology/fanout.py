"""Deliver each batch to every sink and count each reading exactly once.

Each sink is handed the part of the batch its `kinds` select (`daemon/resilience/kinds.py`); only
the sinks that take readings decide their count, and one that does not acknowledges them
trivially (with none of them, every reading is `written` once delivered). A reading is `written`
when every sink that takes readings acknowledged it, `spooled` when any sink had to park it
in its spool, and `rejected` when any sink refused it permanently (then it is dead-lettered once,
with the reason). A sink may refuse single rows and take the rest (`RowsRefused`): those rows
are `rejected` (dead-lettered once, with that sink's reason per row) and the rest of the batch
counts as above. Derived records (features) ride along and are not readings.

With several sinks, each delivery gets the batch's `SpoolCopies`: the first sink to spool it
writes the counted copy and the others mark theirs `copy`, so that replays (one per sink) count
each reading once, as it was counted here once (`daemon/resilience/copies.py`).

A batch abandoned by a sink (a forced exit with its spool full and the sink down) is counted
`abandoned` and nothing else: it stays in flight, the only loss allowed. `deliver` returns False
for it, so that the caller does not tell its source the batch was taken. It returns False too
when a sink without readings abandons its part (derived records): the readings keep the count
the other sinks gave them, but the batch is not taken.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import numpy.typing as npt
import structlog

from daemon.batch import Batch
from daemon.deadletter import DeadLetterEntry
from daemon.observability import events
from daemon.observability.health import StageStats
from daemon.resilience import Delivery, GuardedSink, SpoolCopies
from daemon.runtime import RunState

log = structlog.get_logger("fanout")


class FanOut:
    def __init__(self, sinks: list[GuardedSink], state: RunState) -> None:
        self.sinks = sinks
        self.state = state
        # Per sink: how long each delivery took (write and flush with retries, or spooling),
        # the "write latency" of `/status`; and the sinks' tap points (`ingestd tap`).
        self.delivery_stats = {s.label: StageStats() for s in sinks}
        self._timings = [self.delivery_stats[s.label] for s in sinks]
        self._taps = state.taps
        self._tap_points = [state.taps.point(s.label) for s in sinks]

    async def deliver(self, batch: Batch) -> bool:
        """Deliver `batch` to every sink and count it; False if it was abandoned (not taken)."""
        if self._taps.sink_taps:  # one attribute test per batch while nobody taps a sink
            self._show_taps(batch)
        if len(self.sinks) == 1:  # no copies to share, no gather
            results = [await self._timed(0, batch, None)]
        else:
            copies = SpoolCopies()
            each = (self._timed(i, batch, copies) for i in range(len(self.sinks)))
            results = list(await asyncio.gather(*each))
        readers = [(s, r) for s, r in zip(self.sinks, results, strict=True) if s.takes_readings]
        counted = self._count(batch, readers)
        return counted and not any(r.outcome == "abandoned" for r in results)

    async def _timed(self, i: int, batch: Batch, copies: SpoolCopies | None) -> Delivery:
        began = time.perf_counter()
        result = await self.sinks[i].deliver(batch, copies)
        self._timings[i].record(len(batch), len(batch), time.perf_counter() - began)
        return result

    def _show_taps(self, batch: Batch) -> None:
        """Each tapped sink's taps see the part of `batch` that sink is handed (its kinds)."""
        for sink, point in zip(self.sinks, self._tap_points, strict=True):
            if point.taps and (part := sink.taking.part(batch)) is not None:
                point.offer(part)

    def _count(self, batch: Batch, readers: list[tuple[GuardedSink, Delivery]]) -> bool:
        """Count the readings by the outcomes of the sinks that take them."""
        n = len(batch)
        if n == 0:
            return True
        counters = self.state.counters
        results = [r for _, r in readers]
        rejected = [r for r in results if r.outcome == "rejected"]
        if rejected:
            reason = rejected[0].reason or "rejected by sink"
            labels = [s.label for s, r in readers if r is rejected[0]]
            self.state.dead_letter.write_all(
                DeadLetterEntry(reason, labels[0], record) for record in batch.to_records()
            )
            counters.rejected += n
            log.warning(events.SINK_REJECTED, sink=labels[0], readings=n, reason=reason)
            return True
        kept = self._refused_rows(batch, readers)
        if kept is not None:
            n = int(np.count_nonzero(kept))  # the rest of the batch counts as the batch would
        if any(r.outcome == "abandoned" for r in results):
            counters.abandoned += n  # still in flight: neither written nor spooled
            return False
        elif any(r.outcome == "spooled" for r in results):
            counters.spooled += n
        else:
            counters.written += n
            # end-to-end: reading taken -> acknowledged
            self.state.latency.record(batch.ts if kept is None else batch.ts[kept])
        return True

    def _refused_rows(
        self, batch: Batch, readers: list[tuple[GuardedSink, Delivery]]
    ) -> npt.NDArray[np.bool_] | None:
        """Rows some sink refused one by one (`RowsRefused`, the rest of the batch written):
        each dead-lettered once, with the first refusing sink's reason, and counted
        `rejected`. Returns which rows are left (None: no row was refused)."""
        reasons: dict[int, tuple[str, str]] = {}
        for sink, delivery in readers:
            for row, reason in (delivery.refused or {}).items():
                reasons.setdefault(row, (sink.label, reason))
        if not reasons:
            return None
        rows = sorted(reasons)
        kept = np.ones(len(batch), dtype=np.bool_)
        kept[rows] = False
        records = batch.select(~kept).to_records()
        self.state.dead_letter.write_all(
            DeadLetterEntry(reasons[row][1], reasons[row][0], record)
            for row, record in zip(rows, records, strict=True)
        )
        self.state.counters.rejected += len(rows)
        label, reason = reasons[rows[0]]
        log.warning(
            events.SINK_REJECTED, sink=label, readings=len(rows), of=len(batch), reason=reason
        )
        return kept

    async def replay_idle(self) -> None:
        """Give each sink a chance to replay its spool when no new data is arriving (each
        guarded sink serialises this with its own deliveries)."""
        for sink in self.sinks:
            await sink.maybe_replay()
