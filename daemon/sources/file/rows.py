"""What a parsed chunk of a replayed file is: reading columns, each row's line number, and the
rejected lines with their reasons; plus the fast-then-per-line parsing scheme both formats share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from daemon.batch import Batch, qualities_from_bytes
from daemon.sensors import SENSORS
from daemon.sources.file import fields as ff


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based line number in the file
    reason: str
    raw: str  # the line as text


@dataclass(frozen=True)
class Rows:
    """Parsed readings of one chunk, in file order."""

    sensor: npt.NDArray[np.int32]
    seq: ff.I64
    ts: ff.F64
    value: ff.F64
    stale: npt.NDArray[np.bool_]
    line: ff.I64  # where each row came from (1-based line number)
    interpolated: npt.NDArray[np.bool_] | None = None  # None: no row is (see `daemon.batch`)

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def batch(self, start: int, stop: int) -> Batch:
        s = slice(start, stop)
        batch = Batch(self.sensor[s], self.seq[s], self.ts[s], self.value[s], self.stale[s])
        if self.interpolated is not None and self.interpolated[s].any():
            batch.interpolated = self.interpolated[s]
        return batch

    @classmethod
    def empty(cls) -> Rows:
        return cls.of(sensor=[], seq=[], ts=[], value=[], stale=[], line=[])

    def since(self, line: int) -> Rows:
        """The rows from line `line` on (a replay resuming mid-chunk)."""
        if self.line.shape[0] == 0 or self.line[0] >= line:
            return self
        keep = self.line >= line
        return Rows(
            self.sensor[keep],
            self.seq[keep],
            self.ts[keep],
            self.value[keep],
            self.stale[keep],
            self.line[keep],
            None if self.interpolated is None else self.interpolated[keep],
        )

    @classmethod
    def of(
        cls,
        *,
        sensor: Any,
        seq: Any,
        ts: Any,
        value: Any,
        stale: Any,
        line: Any,
        interpolated: Any = None,
    ) -> Rows:
        return cls(
            np.asarray(sensor, dtype=np.int32),
            np.asarray(seq, dtype=np.int64),
            np.asarray(ts, dtype=np.float64),
            np.asarray(value, dtype=np.float64),
            np.asarray(stale, dtype=np.bool_),
            np.asarray(line, dtype=np.int64),
            None if interpolated is None else np.asarray(interpolated, dtype=np.bool_),
        )


def intern_all(ids: list[str], units: list[str]) -> npt.NDArray[np.int32]:
    """`SENSORS` indices of each row's `(sensor_id, unit)`: every reading keeps its own unit."""
    return SENSORS.intern_all(ids, units)


class RowsParser:
    """Fast path first, per-line path if it declines. Empty lines are no readings."""

    def parse(self, first: int, lines: list[bytes]) -> tuple[Rows, list[Rejection]]:
        if all(lines):
            kept, numbers = lines, first + np.arange(len(lines), dtype=np.int64)
        else:
            at = [i for i, ln in enumerate(lines) if ln]
            kept, numbers = [lines[i] for i in at], first + np.array(at, dtype=np.int64)
        fast = self._fast(kept, numbers)
        return (fast, []) if fast is not None else self._per_line(first, lines)

    def _fast(self, lines: list[bytes], numbers: ff.I64) -> Rows | None:
        raise NotImplementedError

    def _per_line(self, first: int, lines: list[bytes]) -> tuple[Rows, list[Rejection]]:
        raise NotImplementedError


# sensor_id, unit, seq, ts, value, quality code (`daemon.batch.QUALITIES`), line number
_Row = tuple[str, str, int, float, float, int, int]


class Collector:
    """The per-line path's output: valid rows, and rejects."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.rejected: list[Rejection] = []

    def reject(self, line: int, reason: str, raw: bytes) -> None:
        self.rejected.append(Rejection(line, reason, raw.decode("utf-8", "replace")))

    def result(self) -> tuple[Rows, list[Rejection]]:
        if not self.rows:  # a chunk of nothing but malformed lines
            return Rows.empty(), self.rejected
        ids, units, seq, ts, value, quality, line = (list(c) for c in zip(*self.rows, strict=True))
        sensor = intern_all(ids, units)
        codes = np.array(quality, dtype=np.uint8)
        stale, interpolated = qualities_from_bytes(codes)
        rows = Rows.of(
            sensor=sensor,
            seq=seq,
            ts=ts,
            value=value,
            stale=stale,
            line=line,
            interpolated=interpolated,
        )
        return rows, self.rejected
