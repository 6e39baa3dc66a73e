"""What one sink takes of a batch: the readings and derived records of its `kinds`.

Why here, in front of each guarded sink, and not in the sinks: every sink then gets the same
rule for free, and the spool holds what the sink takes — a batch spooled for an alerts-only
sink is its alerts, replayed to it as they were parked (and a spool an earlier run left is cut
to the sink's kinds again on replay, in case the config changed in between).

The rule: the rows (readings) go along only if "reading" is among the kinds, and a derived
record only if its `kind` is. A part is all the rows or none, never a subset, so every sink that
takes readings takes the same ones and the fan-out counts each reading once; a sink without
"reading" acknowledges readings trivially (`takes_readings`). A sink that takes every kind gets
the batch untouched (derived records of kinds this version does not name included), so the
default costs nothing. A sink that would take nothing of a batch is not called for it.

Why the wire bytes are carried over: the encoder child encodes the whole batch, its readings'
lines followed by its derived records' lines (`daemon/wire/encode.py`). A part with the same rows
but fewer derived records (a readings-only JSON-lines sink behind the features stage: every
batch) would otherwise be encoded again on the event loop, the cost the child exists to take off
it. So the readings' lines are cut out of the child's bytes — once the tail is checked to be
exactly the batch's derived records — and the part's own records appended. A part without rows
has no bytes of its own to reuse (`Batch.part` does not carry the memo): its sink encodes its few
records itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemon.batch import RECORD_KINDS, Batch
from daemon.wire.encode import WIRE, encode_derived, wire_bytes

READING = "reading"


class Taking:
    """One sink's kinds, and the part of a batch they select."""

    __slots__ = ("_derived", "everything", "kinds", "takes_readings")

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self.takes_readings = READING in self.kinds
        self.everything = self.kinds >= frozenset(RECORD_KINDS)
        self._derived = self.kinds - {READING}

    def part(self, batch: Batch) -> Batch | None:
        """What of `batch` the sink takes: `batch` itself when that is all of it, None when
        it is nothing (no rows for it, no records of its kinds)."""
        if self.everything:
            return batch
        derived = [r for r in batch.derived if r.get("kind") in self._derived]
        if not derived and not (self.takes_readings and len(batch)):
            return None
        if self.takes_readings and len(derived) == len(batch.derived):
            return batch  # nothing of it to leave out
        part = batch.part(readings=self.takes_readings, derived=derived)
        if self.takes_readings:
            _carry_wire_bytes(batch, part)
        return part


def _carry_wire_bytes(batch: Batch, part: Batch) -> None:
    """Give `part` (the same rows as `batch`, other derived records) the readings' lines of
    `batch`'s encoded-ahead bytes plus its own records' lines; nothing if that is not sure."""
    full = wire_bytes(batch)
    if full is None:
        return
    try:
        tail = encode_derived(batch.derived)
        own = encode_derived(part.derived)
    except (TypeError, ValueError):  # a record orjson refuses: the sink encodes and judges it
        return
    cut = len(full) - len(tail)
    if cut < 0 or full[cut:] != tail:
        return
    readings: Any = full[:cut]
    part.remember(WIRE, memoryview(bytes(readings) + own) if own else readings)
