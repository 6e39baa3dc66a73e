"""Counting what a replay delivered, and its `spool_replayed` lines.

One line per origin: `inherited` (an earlier run spooled it: those readings enter this run's
counters now) or not (this run's own, counted `spooled` already). `copies` are readings another
sink's spool counts (`copies.py`): delivered to this sink, counted nowhere a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from daemon.batch import Batch
from daemon.counters import Counters
from daemon.deadletter import DeadLetterEntry
from daemon.observability import events
from daemon.resilience.spool import SpooledBatch
from daemon.runtime import RunState


@dataclass(slots=True)
class _Run:
    batches: int = 0
    readings: int = 0
    rejected: int = 0
    copies: int = 0


class ReplayRuns:
    def __init__(self) -> None:
        self._runs = {True: _Run(), False: _Run()}

    def add(self, item: SpooledBatch, *, rejected: bool, refused: int = 0) -> None:
        run = self._runs[item.inherited]
        if rejected:
            run.rejected += item.readings
        else:
            run.batches += 1
            run.readings += item.readings - refused
            run.rejected += refused
        if not item.counted:
            run.copies += item.readings

    def report(self, log: Any, label: str) -> None:
        for inherited, run in self._runs.items():
            if run.batches or run.rejected:
                log.info(
                    events.SPOOL_REPLAYED,
                    sink=label,
                    batches=run.batches,
                    readings=run.readings,
                    rejected=run.rejected,
                    copies=run.copies,
                    inherited=inherited,
                )


def settle(counters: Counters, item: SpooledBatch, *, rejected: bool, refused: int = 0) -> None:
    """Count a replayed batch the sink acknowledged or refused (already dead-lettered), or
    acknowledged but for `refused` rows (`RowsRefused`, those dead-lettered already).

    A copy (another sink's spool carries its count) counts nothing. Inherited (an earlier run
    spooled it): it enters this run now — `replayed` — and leaves as `written` or `rejected`.
    Spooled in this run: it was counted `spooled` already; a delivery adds `unspooled`, a
    refusal nothing."""
    if not item.counted:
        return
    n = item.readings
    if item.inherited:
        counters.replayed += n
        if rejected:
            counters.rejected += n
        else:
            counters.written += n - refused
            counters.rejected += refused
    elif not rejected:
        counters.unspooled += n - refused


def dead_letter(state: RunState, label: str, item: SpooledBatch, reason: str) -> None:
    """A replayed batch the sink refuses goes to the dead-letter file with the reason."""
    state.dead_letter.write_all(
        DeadLetterEntry(reason, label, record) for record in item.batch.to_records()
    )


def dead_letter_rows(state: RunState, label: str, batch: Batch, refused: Mapping[int, str]) -> None:
    """The rows of `batch` a sink refused one by one (`RowsRefused`), each with its reason."""
    rows = sorted(refused)
    picked = batch.select(np.isin(np.arange(len(batch)), rows)).to_records()
    state.dead_letter.write_all(
        DeadLetterEntry(refused[i], label, record) for i, record in zip(rows, picked, strict=True)
    )
