"""Live views of the data path for `ingestd tap`: hook points, and one bounded buffer per tap.

Why it is built this way: a tap must cost nothing while nobody taps and must never slow the
pipeline while someone does. Every hook point (the output of each stage, the delivery to each
sink) is a `TapPoint` created once per label; the data path checks one attribute per batch
(`point.taps`, an empty tuple while untapped) and calls `offer` only when it is not empty. An
offer never waits: it samples the batch, encodes what it keeps as wire JSON lines at once (so
later stages mutating the batch in place cannot change what the tap shows) and appends the
bytes to the tap's buffer, or, when the buffer already holds `max_records`, counts them
`dropped` and returns. The reader (`tapstream.py`) drains the buffer at its own pace; a slow
reader loses records, the pipeline never waits for it.

The board lives in `RunState`, so a tap outlives a reload that keeps its label.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from daemon.batch import RECORD_KINDS, Batch
from daemon.wire.encode import encode_batch, wire_bytes

READING = "reading"
Rows = npt.NDArray[np.intp]
SPARSE_SAMPLE = 0.1  # below this, a sample picks its rows rather than testing each
MAX_BUFFERED_RECORDS = 10_000  # per tap: what a slow reader may be behind before drops begin


class Tap:
    """One reader's view of one point: which records it wants and what is waiting for it."""

    _ids = itertools.count(1)

    def __init__(
        self,
        at: str,
        *,
        kind: str | None = None,
        sample: float = 1.0,
        limit: int | None = None,
        max_records: int = MAX_BUFFERED_RECORDS,
        seed: int | None = None,
    ) -> None:
        if kind is not None and kind not in RECORD_KINDS:
            raise ValueError(f"kind must be one of {', '.join(RECORD_KINDS)}, got {kind!r}")
        if not 0.0 < sample <= 1.0:
            raise ValueError(f"sample must be > 0 and <= 1, got {sample:g}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.id = next(self._ids)
        self.at = at
        self.kind = kind
        self.sample = sample
        self.limit = limit
        self.max_records = max_records
        self.accepted = 0  # records put into the buffer (the limit counts these)
        self.sent = 0  # records handed to the reader
        self.dropped = 0  # records the full buffer refused
        self.closed = False
        self._rng = np.random.default_rng(seed)
        # What is waiting for the reader: copies of the records kept (encoded when taken), or
        # the wire bytes a sink's batch already carried.
        self._chunks: deque[Batch | bytes] = deque()
        self._buffered = 0
        self._ready = asyncio.Event()

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def done(self) -> bool:
        """Nothing more will come: closed, or the limit reached and everything handed out."""
        return self.closed or (self._limit_reached and not self._chunks)

    @property
    def _limit_reached(self) -> bool:
        return self.limit is not None and self.accepted >= self.limit

    def offer(self, batch: Batch) -> None:
        """Keep what this tap wants of `batch`, or count it dropped; never waits."""
        if self.closed or self._limit_reached:
            return
        rows = self._rows(batch)
        derived = self._derived(batch)
        n = (len(batch) if rows is None else int(rows.shape[0])) + len(derived)
        if n == 0:
            return
        if self.limit is not None and n > (room := self.limit - self.accepted):
            rows, derived = _cut(batch, rows, derived, room)
            n = room
        if self._buffered and self._buffered + n > self.max_records:
            self.dropped += n
            return
        whole = rows is None and len(derived) == len(batch.derived)
        ahead = wire_bytes(batch) if whole else None  # at a sink: encoded by the child already
        self._chunks.append(bytes(ahead) if ahead is not None else _snapshot(batch, rows, derived))
        self._buffered += n
        self.accepted += n
        self._ready.set()

    def take(self) -> tuple[int, bytes]:
        """Everything buffered, as (records, JSON lines); (0, b"") when nothing is. The
        snapshots are encoded here, consecutive ones with the same columns in one call: the
        encoder's cost is mostly per call, and a sampled tap keeps a few rows of each batch."""
        if not self._chunks:
            return 0, b""
        records = self._buffered
        data = b"".join(_encoded(self._chunks))
        self._chunks.clear()
        self._buffered = 0
        self._ready.clear()
        self.sent += records
        return records, data

    async def wait(self, timeout_s: float) -> None:
        """Until something is buffered, the tap closes, or `timeout_s` passes."""
        if self._chunks or self.closed:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "kind": self.kind,
            "sample": self.sample,
            "limit": self.limit,
            "sent": self.sent,
            "dropped": self.dropped,
            "buffered": self._buffered,
        }

    # -- what of a batch this tap wants ---------------------------------------------------
    def _rows(self, batch: Batch) -> Rows | None:
        """Indices of the readings kept, in order; None: all of them."""
        if self.kind not in (None, READING):
            return np.empty(0, dtype=np.intp)
        if self.sample >= 1.0:
            return None
        n = len(batch)
        if self.sample < SPARSE_SAMPLE:  # how many, then which: ~3x cheaper than a draw each
            chosen = self._rng.choice(n, size=self._rng.binomial(n, self.sample), replace=False)
            return np.sort(chosen).astype(np.intp, copy=False)
        return np.flatnonzero(self._rng.random(n) < self.sample)

    def _derived(self, batch: Batch) -> list[dict[str, Any]]:
        if self.kind == READING or not batch.derived:
            return []
        wanted = [r for r in batch.derived if self.kind is None or r.get("kind") == self.kind]
        if self.sample < 1.0 and wanted:
            keep = self._rng.random(len(wanted)) < self.sample
            wanted = [r for r, k in zip(wanted, keep, strict=True) if k]
        return wanted


def _snapshot(batch: Batch, rows: Rows | None, derived: list[dict[str, Any]]) -> Batch:
    """The kept readings (`rows`; None: all) and `derived`, copied: the stages after this
    point may change the batch (add a column, or a plugin its arrays in place)."""
    if rows is not None and rows.shape[0] == 0:
        return batch.part(readings=False, derived=list(derived))

    def kept(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return column.copy() if rows is None else column.take(rows)

    return Batch(
        sensor=kept(batch.sensor),
        seq=kept(batch.seq),
        ts=kept(batch.ts),
        value=kept(batch.value),
        stale=kept(batch.stale),
        columns={name: kept(column) for name, column in batch.columns.items()},
        derived=list(derived),
        interpolated=None if batch.interpolated is None else kept(batch.interpolated),
    )


def _encoded(chunks: Iterable[Batch | bytes]) -> Iterator[bytes]:
    """Each run of snapshots with the same columns as one batch (its readings first, then its
    derived records), and bytes as they are."""
    run: list[Batch] = []
    for chunk in chunks:
        if isinstance(chunk, Batch) and (not run or chunk.columns.keys() == run[0].columns.keys()):
            run.append(chunk)
            continue
        if run:
            yield _encode(Batch.concat(run))
        run = [chunk] if isinstance(chunk, Batch) else []
        if isinstance(chunk, bytes):
            yield chunk
    if run:
        yield _encode(Batch.concat(run))


def _cut(
    batch: Batch,
    rows: Rows | None,
    derived: list[dict[str, Any]],
    room: int,
) -> tuple[Rows, list[dict[str, Any]]]:
    """The first `room` records (readings first, as the wire format orders them)."""
    all_rows = np.arange(len(batch), dtype=np.intp) if rows is None else rows
    kept = all_rows[:room]
    return kept, derived[: room - int(kept.shape[0])]


def _encode(view: Batch) -> bytes:
    """The records as the sinks' wire format writes them (ts as ISO text); a batch the wire
    encoder refuses (a non-finite ts, an odd derived value) still shows, through orjson."""
    try:
        return encode_batch(view)
    except (TypeError, ValueError):
        records = [{"kind": READING, **r} for r in view.to_records()] + list(view.derived)
        option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
        return b"".join(orjson.dumps(r, default=repr, option=option) for r in records)


class TapPoint:
    """One place records can be watched (`stages[2]`, `sinks[0]`). The data path reads `taps`
    once per batch: an empty tuple costs one attribute load and a truth test."""

    __slots__ = ("label", "taps")

    def __init__(self, label: str) -> None:
        self.label = label
        self.taps: tuple[Tap, ...] = ()

    def offer(self, batch: Batch) -> None:
        for tap in self.taps:
            tap.offer(batch)


class TapBoard:
    """Every hook point by label, and the taps attached to them. `sink_taps` lets the fan-out
    check one attribute per batch for all its sinks at once."""

    def __init__(self) -> None:
        self.points: dict[str, TapPoint] = {}
        self.sink_taps = 0
        self.sent = 0  # records handed to readers by taps that have detached
        self.dropped = 0  # ... and records their buffers refused

    def point(self, label: str) -> TapPoint:
        found = self.points.get(label)
        if found is None:
            found = self.points[label] = TapPoint(label)
        return found

    def attach(self, tap: Tap) -> None:
        point = self.point(tap.at)
        point.taps = (*point.taps, tap)
        if tap.at.startswith("sinks["):
            self.sink_taps += 1

    def detach(self, tap: Tap) -> None:
        tap.close()
        point = self.point(tap.at)
        if tap not in point.taps:
            return
        point.taps = tuple(t for t in point.taps if t is not tap)
        if tap.at.startswith("sinks["):
            self.sink_taps -= 1
        self.sent += tap.sent
        self.dropped += tap.dropped

    def attached(self) -> list[Tap]:
        return [tap for point in self.points.values() for tap in point.taps]

    def close_all(self) -> None:
        """End every tap's stream (each detaches itself once its reader is told)."""
        for tap in self.attached():
            tap.close()

    def describe(self) -> dict[str, Any]:
        """The taps now attached, and records sent and dropped by every tap so far."""
        attached = self.attached()
        return {
            "attached": [tap.describe() for tap in attached],
            "sent": self.sent + sum(tap.sent for tap in attached),
            "dropped": self.dropped + sum(tap.dropped for tap in attached),
        }
