"""The unit that flows between stages: a column-oriented micro-batch of readings.

Why columns: per-record Python objects are the first bottleneck of a pipeline like this. A batch
holds numpy arrays — `sensor` (int32 index into `daemon.sensors.SENSORS`), `seq`, `ts` (epoch
seconds), `value`, `stale` — so a stage pays the async-generator, queue and I/O cost once for
hundreds or thousands of readings, and window math is vectorised across sensors.

A batch may interleave many sensors; within one sensor, rows are in `seq` order and stages keep
that order. Stages add float columns (`normalized`, `moving_avg`, ...) to `columns`; sinks encode
every column in insertion order. Derived records (features, alerts) ride along in `derived`.

A reading's `quality` is one of `QUALITIES`: "ok" (a good read), "stale" (the read failed and
the value repeats the last good one) or "interpolated" (the read failed and the value lies on
the line between the good reads around it). `stale` is true for both failed kinds, so code that
knows only `stale` never mistakes an estimate for a measurement; `interpolated` (None: no such
row, the common case, so the other paths pay nothing) marks which of them are interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.sensors import SENSORS

# What a batch carries, by the `kinds` names a sink's config chooses from: its rows are
# "reading"s, and each derived record says its own `kind` ("features", "alert").
RECORD_KINDS: tuple[str, ...] = ("reading", "features", "alert")
# A reading's `quality` on the wire, by code: what `Batch.quality_codes` returns, what the spool
# stores in its quality byte (0 and 1 are what an older ingestd wrote there as `stale`).
QUALITIES: tuple[str, ...] = ("ok", "stale", "interpolated")
INTERPOLATED = 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SensorArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Batch:
    """Readings as equally long columns; `len(batch)` is the number of readings."""

    sensor: SensorArray
    seq: IntArray
    ts: FloatArray
    value: FloatArray
    stale: BoolArray
    columns: dict[str, FloatArray] = field(default_factory=dict)
    derived: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False  # came from a spool left by an earlier run
    # Its place in the order sources' batches entered the pipeline (-1: not from a source now);
    # kept by `select` and `concat` so the pipeline knows when a source's batch is taken.
    ordinal: int = -1
    # Facts derived from the rows that several components need (the rows grouped by sensor,
    # the wire bytes), computed once per batch by whoever needs them first: see `recall`.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Which rows (all of them `stale` too) hold interpolated values; None: none (see the doc).
    interpolated: BoolArray | None = None

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def remember(self, key: str, value: Any) -> None:
        """Keep `value`, a fact about the rows as they are now, under `key`."""
        self.memo[key] = (self.sensor, value)

    def recall(self, key: str) -> Any | None:
        """What was remembered under `key`, if the rows are still the ones it was computed
        for: a copy made with `dataclasses.replace` shares the memo but may have other rows."""
        entry = self.memo.get(key)
        return entry[1] if entry is not None and entry[0] is self.sensor else None

    @classmethod
    def of_sensor(
        cls,
        sensor_id: str,
        seq: Any,
        ts: Any,
        value: Any,
        stale: Any = None,
        *,
        unit: str = "",
        columns: dict[str, Any] | None = None,
    ) -> Batch:
        """One sensor's readings from any sequences (lists, arrays), in canonical dtypes."""
        seq_a = np.asarray(seq, dtype=np.int64)
        idx = SENSORS.intern(sensor_id, unit)
        return cls.from_columns(
            np.full(seq_a.shape[0], idx, dtype=np.int32), seq_a, ts, value, stale, columns=columns
        )

    @classmethod
    def from_columns(
        cls,
        sensor: Any,
        seq: Any,
        ts: Any,
        value: Any,
        stale: Any = None,
        *,
        columns: dict[str, Any] | None = None,
        interpolated: Any = None,
    ) -> Batch:
        seq_a = np.asarray(seq, dtype=np.int64)
        stale_a = (
            np.zeros(seq_a.shape[0], dtype=np.bool_)
            if stale is None
            else np.asarray(stale, dtype=np.bool_)
        )
        return cls(
            sensor=np.asarray(sensor, dtype=np.int32),
            seq=seq_a,
            ts=np.asarray(ts, dtype=np.float64),
            value=np.asarray(value, dtype=np.float64),
            stale=stale_a,
            columns={k: np.asarray(v, dtype=np.float64) for k, v in (columns or {}).items()},
            interpolated=None if interpolated is None else np.asarray(interpolated, np.bool_),
        )

    @classmethod
    def concat(cls, batches: list[Batch]) -> Batch:
        """One batch holding the rows of `batches` in order (their columns must match)."""
        if len(batches) == 1:
            return batches[0]
        names = list(batches[0].columns)
        return cls(
            sensor=np.concatenate([b.sensor for b in batches]),
            seq=np.concatenate([b.seq for b in batches]),
            ts=np.concatenate([b.ts for b in batches]),
            value=np.concatenate([b.value for b in batches]),
            stale=np.concatenate([b.stale for b in batches]),
            columns={n: np.concatenate([b.columns[n] for b in batches]) for n in names},
            derived=[d for b in batches for d in b.derived],
            replayed=any(b.replayed for b in batches),
            ordinal=min(b.ordinal for b in batches),  # conservative: taken once all of it is
            interpolated=(
                None
                if all(b.interpolated is None for b in batches)
                else np.concatenate([b.interpolated_mask() for b in batches])
            ),
        )

    def select(self, mask: BoolArray) -> Batch:
        """The readings where `mask` is true, keeping derived records and every column."""
        rows = np.flatnonzero(mask)  # once, then a gather per column: ~2x a boolean mask each
        return Batch(
            sensor=self.sensor.take(rows, mode="clip"),
            seq=self.seq.take(rows, mode="clip"),
            ts=self.ts.take(rows, mode="clip"),
            value=self.value.take(rows, mode="clip"),
            stale=self.stale.take(rows, mode="clip"),
            columns={k: v.take(rows, mode="clip") for k, v in self.columns.items()},
            derived=self.derived,
            replayed=self.replayed,
            ordinal=self.ordinal,
            interpolated=(
                None if self.interpolated is None else self.interpolated.take(rows, mode="clip")
            ),
        )

    def part(self, *, readings: bool, derived: list[dict[str, Any]]) -> Batch:
        """Its readings (all of them, or none) with `derived` as its derived records: what one
        sink takes of it (its `kinds`). The columns are shared, not copied; the memo is not
        (the wire bytes hold the derived records too, and a rowless part has other rows)."""
        if readings:
            sensor, seq, ts, value, stale = self.sensor, self.seq, self.ts, self.value, self.stale
            columns = dict(self.columns)
        else:
            sensor, seq, ts = self.sensor[:0], self.seq[:0], self.ts[:0]
            value, stale = self.value[:0], self.stale[:0]
            columns = {k: v[:0] for k, v in self.columns.items()}
        interpolated = self.interpolated
        return Batch(
            sensor=sensor,
            seq=seq,
            ts=ts,
            value=value,
            stale=stale,
            columns=columns,
            derived=derived,
            replayed=self.replayed,
            ordinal=self.ordinal,
            interpolated=interpolated if interpolated is None or readings else interpolated[:0],
        )

    def sensor_ids(self) -> npt.NDArray[np.object_]:
        """`sensor_id` string per row."""
        ids: npt.NDArray[np.object_] = SENSORS.ids_array()[self.sensor]
        return ids

    def to_records(self) -> list[dict[str, Any]]:
        """A plain dict per reading (wire names; `ts` still epoch seconds). For tests, the spool
        and the dead-letter file; never on a sink's hot path."""
        ids = SENSORS.ids_array()
        units = SENSORS.units_array()
        cols = list(self.columns.items())
        quality = self.quality_codes()
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            s = int(self.sensor[i])
            rec: dict[str, Any] = {
                "sensor_id": ids[s],
                "seq": int(self.seq[i]),
                "ts": float(self.ts[i]),
                "value": float(self.value[i]),
                "unit": units[s],
                "quality": QUALITIES[quality[i]],
            }
            for name, col in cols:
                rec[name] = float(col[i])
            out.append(rec)
        return out

    def interpolated_mask(self) -> BoolArray:
        """`interpolated` as a column (all false when None)."""
        if self.interpolated is None:
            return np.zeros(len(self), dtype=np.bool_)
        return self.interpolated

    def quality_codes(self) -> npt.NDArray[np.intp]:
        """Each reading's index into `QUALITIES`: the one place a quality is decided, so the
        wire, the spool and the database sink say the same for every row."""
        codes = self.stale.astype(np.intp)
        if self.interpolated is not None:
            codes[self.interpolated] = INTERPOLATED
        return codes

    def quality_bytes(self) -> npt.NDArray[np.uint8]:
        """`quality_codes` as one byte per row (the spool's and the encoder child's column);
        without interpolated rows it is `stale` itself, viewed, not converted."""
        if self.interpolated is None:
            return self.stale.view(np.uint8)
        return self.quality_codes().astype(np.uint8)


def qualities_from_bytes(codes: npt.NDArray[np.uint8]) -> tuple[BoolArray, BoolArray | None]:
    """`(stale, interpolated)` from a column `Batch.quality_bytes` wrote (any non-zero code is a
    failed read; one this ingestd does not know reads as stale, the honest fallback)."""
    stale = codes.astype(np.bool_)
    interpolated = codes == INTERPOLATED
    return stale, interpolated if interpolated.any() else None
