"""A batch's readings as one PostgreSQL binary COPY payload, built by numpy, not per row.

Why not `copy_records_to_table`: it wants a Python tuple per reading and a `datetime` per
timestamp, then encodes each field in a loop; measured, that was most of the sink's CPU. Binary
COPY is a simple format (a header, then per row an int16 field count and per field an int32
length and the big-endian value; -1 is NULL), and all of a row is fixed width except its three
strings, which depend only on the sensor and the quality. So:

- The COPY names its columns fixed-width first (`seq, ts, value, normalized, moving_avg`), then
  the strings (`sensor_id, unit, quality`). A column a batch lacks is NULL in every row: a
  constant -1 length, no data.
- Each row's string tail is looked up per sensor (`SENSORS` index) and quality in a table
  encoded once per sensor (`_Tails`), so no string is encoded per reading.
- Rows whose tails have the same length form one numpy structured array (big-endian fields plus
  the tail bytes), filled a column at a time and dumped with `tobytes()`. COPY does not care in
  which order rows arrive, so the groups (usually one or two: `ok` and `stale` differ in length)
  are concatenated as they are.

What the database would refuse by type (a `ts` that is not finite or outside timestamptz's
range, a NUL character in a sensor id or unit, which `text` cannot hold) is caught here,
vectorised, and left out: `refused` names those rows and why. Everything else about a row (a
CHECK, NOT NULL, a trigger) is the table's to judge.

Timestamps round like `datetime.fromtimestamp` (the fraction to microseconds, half to even), as
the JSON-lines wire does, so both sinks store the same instant.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from daemon.batch import QUALITIES, Batch
from daemon.sensors import SENSORS

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
TRAILER: Final = b"\xff\xff"
CHUNK_BYTES: Final = 1 << 20  # CopyData messages of at most this (the payload is sent in pieces)

FIXED_COLUMNS: Final = ("seq", "ts", "value", "normalized", "moving_avg")
STRING_COLUMNS: Final = ("sensor_id", "unit", "quality")
OPTIONAL_COLUMNS: Final = ("normalized", "moving_avg")  # NULL when a batch lacks the column
ROW_COLUMN: Final = "_ingestd_row"  # the row's index in its batch, for the staging table only

_PG_EPOCH_S: Final = 946_684_800  # 2000-01-01T00:00:00Z, where timestamptz counts from
# timestamptz's range (4714-11-24 BC .. 294276-12-31 AD), in epoch seconds, kept a day inside
_TS_MIN_S: Final = -211_813_488_000 + _PG_EPOCH_S + 86_400
_TS_MAX_S: Final = 9_223_371_331_200 + _PG_EPOCH_S - 86_400
_QUALITY: Final = tuple(q.encode() for q in QUALITIES)
_Q: Final = len(QUALITIES)  # tails per sensor, one per quality


@dataclass(frozen=True)
class Payload:
    """The COPY data of a batch's readings, the columns it fills, and what it left out."""

    columns: tuple[str, ...]
    data: npt.NDArray[np.uint8]
    rows: int  # rows in `data`
    refused: dict[int, str] = field(default_factory=dict)  # row index in the batch -> reason

    async def chunks(self) -> AsyncIterator[memoryview]:
        """The data in `CHUNK_BYTES` pieces (asyncpg sends each as one CopyData message)."""
        view = self.data.data  # the array's buffer, as a memoryview: no copy
        for start in range(0, len(view), CHUNK_BYTES):
            yield view[start : start + CHUNK_BYTES]


def columns(*, with_row: bool = False) -> tuple[str, ...]:
    """The COPY column list, in payload order."""
    return FIXED_COLUMNS + ((ROW_COLUMN,) if with_row else ()) + STRING_COLUMNS


def encode(batch: Batch, *, with_row: bool = False) -> Payload:
    """`batch`'s readings as binary COPY data; `with_row` adds each row's index in the batch
    (the staging table's `_ingestd_row`), so the database can say which rows it refused."""
    keys = batch.sensor.astype(np.int64) * _Q + batch.quality_codes()
    tails = _TAILS.current()
    micros, refused = _checked(batch, keys, tails)
    present = tuple(name for name in OPTIONAL_COLUMNS if name in batch.columns)
    lengths = tails.length[keys]
    if refused:
        lengths = lengths.copy()
        lengths[list(refused)] = 0  # no tail is 0 bytes long: the refused rows are left out
    widths = np.flatnonzero(np.bincount(lengths)).tolist() if len(keys) else []
    whole = widths == [int(lengths[0])] if widths else False  # one group: no gather at all
    groups = []
    for width in widths:
        if width:
            rows = np.arange(len(keys)) if whole else np.flatnonzero(lengths == width)
            groups.append((_layout(width, present, with_row), width, rows))
    # One buffer for the whole payload, each group's rows written in place: building blocks
    # and joining them copied every byte twice more (measured: most of the encoding time).
    size = sum(layout.dtype.itemsize * len(rows) for layout, _, rows in groups)
    out = np.empty(len(HEADER) + size + len(TRAILER), dtype=np.uint8)
    out[: len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
    offset = len(HEADER)
    data = {"seq": batch.seq, "ts": micros, "value": batch.value}
    data |= {name: batch.columns[name] for name in present}
    for layout, width, rows in groups:
        end = offset + layout.dtype.itemsize * len(rows)
        block = layout.fill(out[offset:end])
        for name, values in data.items():
            block[name] = values if whole else values.take(rows)
        if with_row:
            block[ROW_COLUMN] = rows
        block["tail"] = tails.void(width).take(keys if whole else keys.take(rows))
        offset = end
    out[offset:] = np.frombuffer(TRAILER, dtype=np.uint8)
    return Payload(columns(with_row=with_row), out, len(keys) - len(refused), refused)


def _checked(
    batch: Batch, keys: npt.NDArray[np.int64], tails: _TailTable
) -> tuple[npt.NDArray[np.int64], dict[int, str]]:
    """The `ts` column as timestamptz micros, and the rows no PostgreSQL column could take
    (with the reason): a `ts` not finite or out of range, a sensor id or unit that is no text."""
    micros, bad = _pg_micros(batch.ts)
    refused: dict[int, str] = {}
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            value = float(batch.ts[i])
            refused[i] = f"ts {value!r} is no timestamptz (not finite or out of range)"
    bad_text = tails.bad[keys] if len(tails.bad) else bad[:0]
    if bad_text.any():
        for i in np.flatnonzero(bad_text).tolist():
            refused.setdefault(i, "sensor_id or unit is no PostgreSQL text (a NUL, not UTF-8)")
    return micros, refused


def _pg_micros(ts: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Microseconds since 2000-01-01 per `ts` (epoch seconds), rounded as `datetime` does, and
    which rows are no timestamptz at all (NaN, infinite, out of range: their micros are 0)."""
    bad = ~((ts >= _TS_MIN_S) & (ts <= _TS_MAX_S))  # NaN compares false: bad
    frac, whole = np.modf(np.where(bad, 0.0, ts) if bad.any() else ts)
    micros = whole.astype(np.int64)
    micros -= _PG_EPOCH_S
    micros *= 1_000_000
    micros += np.rint(frac * 1e6).astype(np.int64)
    return micros, bad


class _Layout:
    """One row shape (the tail width, which optional columns are present, the row index): its
    packed big-endian dtype, and a block of rows with every constant (the field count, each
    length word, -1 for a NULL column) already in place, copied rather than rebuilt."""

    def __init__(self, tail: int, present: tuple[str, ...], with_row: bool) -> None:
        fields: list[tuple[str, str]] = [("fields", ">i2")]
        constants: dict[str, int] = {"fields": len(FIXED_COLUMNS) + len(STRING_COLUMNS)}
        kinds = {"seq": ">i8", "ts": ">i8", "value": ">f8"}
        kinds |= dict.fromkeys(OPTIONAL_COLUMNS, ">f8")
        for name in FIXED_COLUMNS:
            fields.append((f"len_{name}", ">i4"))
            if name in OPTIONAL_COLUMNS and name not in present:
                constants[f"len_{name}"] = -1  # NULL: no data follows
            else:
                fields.append((name, kinds[name]))
                constants[f"len_{name}"] = 8
        if with_row:
            fields += [(f"len_{ROW_COLUMN}", ">i4"), (ROW_COLUMN, ">i4")]
            constants["fields"] += 1
            constants[f"len_{ROW_COLUMN}"] = 4
        fields.append(("tail", f"V{tail}"))
        self.dtype = np.dtype(fields)  # packed: binary COPY has no padding
        self._constants = constants
        self._template = np.zeros(0, dtype=np.uint8)  # rows of constants, as raw bytes

    def fill(self, region: npt.NDArray[np.uint8]) -> npt.NDArray[np.void]:
        """`region` (a whole number of rows) holding the constants, as rows to fill in.
        Copied as bytes from a template: setting each constant per row costs ~5x more."""
        if len(self._template) < len(region):
            rows = max(len(region), 2 * len(self._template)) // self.dtype.itemsize
            template = np.zeros(rows, dtype=self.dtype)
            for name, value in self._constants.items():
                template[name] = value
            self._template = template.view(np.uint8)
        region[:] = self._template[: len(region)]
        block: npt.NDArray[np.void] = region.view(self.dtype)
        return block


@functools.cache
def _layout(tail: int, present: tuple[str, ...], with_row: bool) -> _Layout:
    return _Layout(tail, present, with_row)


@dataclass
class _TailTable:
    """Per key `sensor * len(QUALITIES) + quality code`: the encoded `sensor_id, unit,
    quality` fields."""

    table: npt.NDArray[np.uint8]  # (keys, longest tail), zero-padded
    length: npt.NDArray[np.int64]  # each key's tail length in bytes
    bad: npt.NDArray[np.bool_]  # the sensor id or unit cannot be text (NUL, not UTF-8)
    _voids: dict[int, npt.NDArray[np.void]] = field(default_factory=dict)

    def void(self, width: int) -> npt.NDArray[np.void]:
        """Each key's first `width` bytes as one numpy void scalar (a gather moves whole
        tails, not bytes)."""
        view = self._voids.get(width)
        if view is None:
            view = np.ascontiguousarray(self.table[:, :width]).view(f"V{width}").reshape(-1)
            self._voids[width] = view
        return view


class _Tails:
    """The tail table of every interned sensor, extended when `SENSORS` grows (it only grows):
    each sensor's strings are encoded once per process, and a new sensor costs its own rows
    only (the arrays grow by doubling, so sensors appearing one at a time stay cheap)."""

    def __init__(self) -> None:
        self._keys = 0
        self._table = np.zeros((0, 0), dtype=np.uint8)
        self._length = np.zeros(0, dtype=np.int64)
        self._bad = np.zeros(0, dtype=np.bool_)
        self._current = _TailTable(self._table, self._length, self._bad)

    def current(self) -> _TailTable:
        if self._keys < _Q * len(SENSORS):
            self._extend(_Q * len(SENSORS))
            k = self._keys
            self._current = _TailTable(self._table[:k], self._length[:k], self._bad[:k])
        return self._current

    def _extend(self, keys: int) -> None:
        new = [_tails(idx) for idx in range(self._keys // _Q, keys // _Q)]
        encoded = [tail for pair, _ in new for tail in pair]
        width = max(self._table.shape[1], *map(len, encoded))
        if keys > len(self._length) or width > self._table.shape[1]:
            capacity = max(keys, 2 * len(self._length))
            table = np.zeros((capacity, width), dtype=np.uint8)
            table[: self._keys, : self._table.shape[1]] = self._table[: self._keys]
            length = np.zeros(capacity, dtype=np.int64)
            length[: self._keys] = self._length[: self._keys]
            bad = np.zeros(capacity, dtype=np.bool_)
            bad[: self._keys] = self._bad[: self._keys]
            self._table, self._length, self._bad = table, length, bad
        for offset, tail in enumerate(encoded):
            key = self._keys + offset
            self._table[key, : len(tail)] = np.frombuffer(tail, dtype=np.uint8)
            self._length[key] = len(tail)
            self._bad[key] = new[offset // _Q][1]
        self._keys = keys


def _tails(idx: int) -> tuple[tuple[bytes, ...], bool]:
    """Sensor `idx`'s tails, one per quality, and whether its strings cannot be text."""
    sensor_id, unit = SENSORS.sensor_id(idx), SENSORS.unit(idx)
    try:
        head = _field(sensor_id.encode()) + _field(unit.encode())
        bad = "\x00" in sensor_id or "\x00" in unit
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it; its rows are refused
        head, bad = _field(b"") + _field(b""), True
    return tuple(head + _field(q) for q in _QUALITY), bad


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


_TAILS = _Tails()
