"""The wire format: a batch as JSON lines, one reading per line, then its derived records.

    {"kind":"reading","sensor_id":"S0007","seq":1234,"ts":"2026-11-21T22:48:23.123456Z",
     "value":51.23,"unit":"celsius","quality":"ok","normalized":0.4312,"moving_avg":50.88}

Why it looks the way it does: this is the hottest code in the daemon (every reading passes through
it once per file-like sink). A dict per reading through orjson costs ~7 us; even one Python object
per number or per piece of a line (cut out of orjson's text of a column, then joined) costs ~50 ns
each, which was 1 us a reading. So nothing here touches a reading in Python: a batch is laid out
as fixed-width rows of uint64 words, a part at a time for all the readings at once (see
`wire_layout`), NUL wherever a value is narrower than the widest of its part in the batch; the
words are transposed into rows once, and the NULs deleted in one pass over the batch's bytes
(JSON text never holds a NUL byte: orjson escapes it). A row is these parts:

    {"kind":"reading","sensor_id":"S0007","seq":           per sensor, looked up
    1234                                                   seq
    ,"ts":"2026-11-21T22:48:23.123456Z","value":           ts (`wire_time`)
    51.23                                                  value
    ,"unit":"celsius","quality":"ok","normalized":         per sensor and quality, looked up
    0.4312 ,"moving_avg": 50.88 }\n                        the columns, their keys, the end

Numbers print exactly as orjson prints them (`wire_numbers`), timestamps as `datetime` does.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import numpy as np
import orjson

from daemon.batch import QUALITIES, Batch
from daemon.components import PermanentSinkError
from daemon.sensors import SENSORS, SensorTable
from daemon.wire.layout import Part, Texts, constant, lookup, pack
from daemon.wire.numbers import number_field
from daemon.wire.timestamps import ts_cells, ts_field

__all__ = [
    "WireEncoder",
    "encode_batch",
    "encode_derived",
    "encode_for_sink",
    "ts_cells",
    "warm_up",
    "wire_bytes",
]

_RECORD: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
_QUALITY: Final = tuple(b',"quality":' + orjson.dumps(q) for q in QUALITIES)
_Q: Final = len(QUALITIES)  # texts per sensor in the tails: one per quality
WIRE: Final = "wire"  # the memo key of a batch's wire bytes encoded ahead (see `Batch.recall`)
_END: Final = constant(b"}\n")


def encode_batch(batch: Batch) -> bytes:
    """`batch` as wire lines: its readings, then each derived record, each line ending in `\\n`."""
    return _DEFAULT.encode(batch)


def wire_bytes(batch: Batch) -> memoryview | None:
    """The batch's wire bytes if they were encoded ahead (`encode_ahead.py`) for its rows."""
    view: memoryview | None = batch.recall(WIRE)
    return view


def encode_for_sink(batch: Batch) -> bytes | memoryview:
    """`encode_batch` for sinks, unless the batch was encoded ahead already (`wire_bytes`): a
    batch that cannot be encoded (a non-finite `ts`, a derived record orjson refuses) will never
    encode, so it is a `PermanentSinkError` (dead-lettered with the reason), not a retry that
    stalls the stream."""
    ahead = wire_bytes(batch)
    if ahead is not None:
        return ahead
    try:
        return _DEFAULT.encode(batch)
    except (ValueError, TypeError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise PermanentSinkError(f"cannot encode batch: {exc}") from exc


def warm_up() -> None:
    """Build the encoder's tables for every sensor known now, and its digit and time tables
    (~30 ms cold, for 1,000 sensors): before a child is forked, so that it inherits them."""
    size = len(SENSORS)
    if size:
        index = np.arange(size, dtype=np.int32)
        _DEFAULT.encode(Batch.from_columns(index, index, np.full(size, 1.7e9), index * 1.5))


def encode_derived(records: list[dict[str, Any]]) -> bytes:
    """Derived records (feature dicts, alerts) as one JSON line each, in order."""
    return b"".join([orjson.dumps(r, option=_RECORD) for r in records])


class WireEncoder:
    """Encodes batches, keeping per-sensor texts of `table` as it grows.

    The texts only ever grow, like the sensor table (a sensor's id and unit never change). A
    lock guards growth only; the tables are immutable snapshots, so a sink may encode from a
    worker thread.
    """

    def __init__(self, table: SensorTable = SENSORS) -> None:
        self._table = table
        self._lock = threading.Lock()
        self._heads = Texts.empty()
        self._bases: list[bytes] = []  # `,"unit":..,"quality":..` per sensor * _Q + quality
        self._tails: dict[bytes, Texts] = {}  # per lead key: the bases + `,"<first column>":`

    def encode(self, batch: Batch) -> bytes:
        n = len(batch)
        derived = encode_derived(batch.derived) if batch.derived else b""
        if n == 0:
            return derived
        keys = [b"," + orjson.dumps(name) + b":" for name in batch.columns]
        heads, tails = self._texts(keys[0] if keys else b"")
        sensor = batch.sensor.astype(np.intp)
        quality = sensor * _Q
        if batch.interpolated is None:
            quality += batch.stale  # the quality code, without making it first
        else:
            quality += batch.quality_codes()
        parts: list[Part] = [
            lookup(heads, sensor),
            number_field(batch.seq),
            ts_field(batch.ts),
            number_field(batch.value),
            lookup(tails, quality),
        ]
        for j, column in enumerate(batch.columns.values()):
            if j:
                parts.append(constant(keys[j]))
            parts.append(number_field(column))
        parts.append(_END)
        words, width = pack(n, parts)
        rows = np.ascontiguousarray(words.T).view(np.uint8)[:, :width]
        return rows.tobytes().replace(b"\0", b"") + derived

    def _texts(self, lead: bytes) -> tuple[Texts, Texts]:
        size = len(self._table)
        heads, tails = self._heads, self._tails.get(lead)
        if tails is None or tails.size < _Q * size or heads.size < size:
            with self._lock:
                heads, tails = self._grow(lead)
        return heads, tails

    def _grow(self, lead: bytes) -> tuple[Texts, Texts]:
        """Add the texts of every sensor known now (for the tails of `lead`, too)."""
        size = len(self._table)
        new = range(self._heads.size, size)
        if new:
            table = self._table
            self._heads = self._heads.extended(
                [
                    b'{"kind":"reading","sensor_id":'
                    + orjson.dumps(table.sensor_id(i))
                    + b',"seq":'
                    for i in new
                ]
            )
            for i in new:
                unit = b',"unit":' + orjson.dumps(table.unit(i))
                self._bases += [unit + quality for quality in _QUALITY]
        tails = self._tails.get(lead, Texts.empty())
        if tails.size < _Q * size:
            tails = tails.extended([base + lead for base in self._bases[tails.size : _Q * size]])
            self._tails[lead] = tails
        return self._heads, tails


_DEFAULT: Final = WireEncoder()
