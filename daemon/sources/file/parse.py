"""Parse chunks of CSV or JSON-lines text into reading columns, rejecting bad lines with reasons.

Each chunk is tried whole first, by column (orjson on the joined lines, numpy conversions on CSV
columns): a clean chunk costs a few numpy calls and no per-line Python. Any doubt (a malformed
line, a quoted CSV field, a NaN) sends that chunk down the per-line path, which is the
definition (see `file_fields`) and names the reason and line number of every reject.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from daemon.sensors import SENSORS
from daemon.sources.file import fields as ff
from daemon.sources.file.rows import Collector, Rejection, Rows, RowsParser, intern_all

__all__ = ["CsvParser", "HeaderError", "JsonlParser", "Rejection", "Rows"]


class HeaderError(ValueError):
    """The CSV header cannot be used; no line of the file can be read without it."""


def _intern_bytes(
    ids: Sequence[bytes], units: Sequence[bytes] | None
) -> npt.NDArray[np.int32] | None:
    """`intern_all` for CSV cells, decoding only the distinct `(id, unit)` pairs, so every
    reading keeps its own unit (None: an id is empty, or a cell not UTF-8, which the per-line
    path will word)."""
    unit_cells = units if units is not None else [b""] * len(ids)
    pairs = list(zip(ids, unit_cells, strict=True))
    try:
        index = {
            pair: SENSORS.intern(pair[0].decode(), pair[1].decode())
            for pair in dict.fromkeys(pairs)
            if pair[0]
        }
    except UnicodeDecodeError:
        return None
    if len(index) != len(dict.fromkeys(pairs)):
        return None  # an empty sensor_id
    return np.fromiter(map(index.__getitem__, pairs), dtype=np.int32, count=len(pairs))


def _commas_per_line(data: bytes, lines: int, commas: int) -> bool:
    """Whether each of the `lines` lines of `data` holds exactly `commas` commas."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.append(np.flatnonzero(buf == ord("\n")), buf.shape[0])
    if ends.shape[0] != lines:
        return False
    before = np.searchsorted(np.flatnonzero(buf == ord(",")), ends)
    return bool((np.diff(before, prepend=0) == commas).all())


class CsvParser(RowsParser):
    def __init__(self, header: bytes) -> None:
        try:
            names = next(csv.reader([header.decode("utf-8-sig")]))
        except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
            raise HeaderError(f"unreadable CSV header: {exc}") from None
        names = [n.strip() for n in names]
        missing = [n for n in ff.REQUIRED if n not in names]
        if missing:
            raise HeaderError(f"CSV header {names} lacks {missing}")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise HeaderError(f"CSV header repeats {duplicated}")
        self.width = len(names)
        self._col = {n: names.index(n) for n in (*ff.REQUIRED, *ff.OPTIONAL) if n in names}

    def _fast(self, lines: list[bytes], numbers: ff.I64) -> Rows | None:
        """All cells split at once, then converted a column at a time. Quoted fields take the
        per-line path (so do NULs, which numpy's bytes dtype would strip from timestamps)."""
        if not lines:
            return None
        data = b"\n".join(lines)
        if b'"' in data or b"\0" in data:
            return None
        n, width = len(lines), self.width
        cells = data.replace(b"\n", b",").split(b",")
        if len(cells) != n * width or not _commas_per_line(data, n, width - 1):
            return None
        col = {name: cells[i::width] for name, i in self._col.items()}
        seq = ff.seq_column(col["seq"])
        value = ff.float_column(col["value"])
        ts = ff.timestamp_column(col["ts"])
        sensor = _intern_bytes(col["sensor_id"], col.get("unit"))
        if seq is None or value is None or ts is None or sensor is None:
            return None
        quality = col.get("quality", [])
        kinds = set(quality)
        if not kinds <= {b"ok", b"stale", b"interpolated", b""}:
            return None
        stale = np.zeros(n, dtype=np.bool_)
        interpolated = None
        if b"stale" in kinds or b"interpolated" in kinds:
            marks = np.array(quality, dtype=object)
            stale = marks == b"stale"
            if b"interpolated" in kinds:
                interpolated = marks == b"interpolated"
                stale |= interpolated  # an interpolated reading is a failed read too
        return Rows.of(
            sensor=sensor,
            seq=seq,
            ts=ts,
            value=value,
            stale=stale,
            line=numbers,
            interpolated=interpolated,
        )

    def _per_line(self, first: int, lines: list[bytes]) -> tuple[Rows, list[Rejection]]:
        out = Collector()
        col = self._col
        for number, raw in enumerate(lines, start=first):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
                fields = next(csv.reader([text]))
            except (UnicodeDecodeError, csv.Error) as exc:
                out.reject(number, f"unreadable line: {exc}", raw)
                continue
            if len(fields) != self.width:
                out.reject(number, f"expected {self.width} fields, got {len(fields)}", raw)
                continue
            try:
                unit = fields[col["unit"]] if "unit" in col else ""
                quality = fields[col["quality"]] if "quality" in col else ""
                out.rows.append(
                    (
                        ff.sensor_id(fields[col["sensor_id"]]),
                        unit,
                        ff.seq(fields[col["seq"]]),
                        ff.timestamp(fields[col["ts"]]),
                        ff.value(fields[col["value"]], text_ok=True),
                        ff.quality(quality),
                        number,
                    )
                )
            except ff.FieldError as exc:
                out.reject(number, str(exc), raw)
        return out.result()


class JsonlParser(RowsParser):
    def _fast(self, lines: list[bytes], numbers: ff.I64) -> Rows | None:
        if not lines:
            return None
        try:
            objs = orjson.loads(b"[" + b",".join(lines) + b"]")
        except orjson.JSONDecodeError:
            return None
        if len(objs) != len(lines) or set(map(type, objs)) != {dict}:
            return None  # e.g. a line holding two values, or an array
        cols = self._columns(objs)
        if cols is None:
            return None
        ids, units, seqs, stamps, values, quality = cols
        try:
            seq = np.array(seqs, dtype=np.int64)
            value = np.array(values, dtype=np.float64)
        except OverflowError:
            seq = None
        ts = self._stamps(stamps)
        if seq is None or ts is None or (seq < 0).any() or not np.isfinite(value).all():
            return None
        marks = np.array(quality, dtype=object)
        stale = marks == "stale"
        interpolated = None
        if "interpolated" in quality:
            interpolated = marks == "interpolated"
            stale |= interpolated  # an interpolated reading is a failed read too
        sensor = intern_all(ids, units)
        return Rows.of(
            sensor=sensor,
            seq=seq,
            ts=ts,
            value=value,
            stale=stale,
            line=numbers,
            interpolated=interpolated,
        )

    @staticmethod
    def _columns(objs: list[dict[str, Any]]) -> tuple[list[Any], ...] | None:
        """The six fields as lists, if every object has plainly valid types."""
        try:
            ids = [o["sensor_id"] for o in objs]
            seqs = [o["seq"] for o in objs]
            stamps = [o["ts"] for o in objs]
            values = [o["value"] for o in objs]
        except KeyError:
            return None
        units = [o.get("unit", "") for o in objs]
        quality = [o.get("quality", "ok") for o in objs]
        valid = (
            set(map(type, ids)) == {str}
            and all(ids)
            and set(map(type, seqs)) == {int}
            and set(map(type, values)) <= {int, float}
            and set(map(type, units)) == {str}
            and set(quality) <= {"ok", "stale", "interpolated"}
        )
        return (ids, units, seqs, stamps, values, quality) if valid else None

    @staticmethod
    def _stamps(stamps: list[Any]) -> ff.F64 | None:
        kinds = set(map(type, stamps))
        if kinds <= {int, float}:
            try:
                out = np.array(stamps, dtype=np.float64)
            except OverflowError:
                return None
            return out if np.isfinite(out).all() else None
        return ff.timestamp_column(stamps) if kinds == {str} else None

    def _per_line(self, first: int, lines: list[bytes]) -> tuple[Rows, list[Rejection]]:
        out = Collector()
        for number, raw in enumerate(lines, start=first):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                out.reject(number, f"bad JSON: {exc}", raw)
                continue
            if not isinstance(obj, dict):
                out.reject(number, f"not a JSON object: {type(obj).__name__}", raw)
                continue
            missing = [k for k in ff.REQUIRED if k not in obj]
            if missing:
                out.reject(number, f"missing field {', '.join(map(repr, missing))}", raw)
                continue
            try:
                out.rows.append(
                    (
                        ff.sensor_id(obj["sensor_id"]),
                        ff.unit(obj.get("unit", "")),
                        ff.seq(obj["seq"]),
                        ff.timestamp(obj["ts"]),
                        ff.value(obj["value"], text_ok=False),
                        ff.quality(obj.get("quality", "ok")),
                        number,
                    )
                )
            except ff.FieldError as exc:
                out.reject(number, str(exc), raw)
        return out.result()
