"""The wire format: a batch as JSON lines, one reading per line, then its derived records.

    {"kind":"reading","sensor_id":"S0007","seq":1234,"ts":"2026-11-21T22:48:23.123456Z",
     "value":51.23,"unit":"celsius","quality":"ok","normalized":0.4312,"moving_avg":50.88}

Why it looks the way it does: this is the hottest code in the daemon (every reading passes through
it once per file-like sink), and on CPython a dict per reading through orjson costs ~7 µs and even
one bytes %-format per line ~1.5 µs (see tests/unit/sinks/bench_encode.py). So nothing here
touches a reading in Python. Each line is cut into
cells that are either looked up per sensor in tables built once (`{"kind":"reading","sensor_id":
"S0007","seq":` and `,"unit":"celsius","quality":"ok","normalized":`), or produced for a whole
column at once (numbers: one `orjson.dumps` of the numpy column split at the commas, which is
also how orjson prints a float, shortest round-trip form, NaN/inf as null; timestamps: fixed
width records assembled in numpy). The cells are interleaved with list slice assignment and
joined once. Each line's closing `}` and newline are folded into the next line's first cell,
which saves a cell per line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from daemon.batch import Batch
from daemon.components import PermanentSinkError
from daemon.sensors import SENSORS, SensorTable

_NUMPY: Final = orjson.OPT_SERIALIZE_NUMPY
_RECORD: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
_END: Final = b"}\n"
_QUALITY: Final = (b',"quality":"ok"', b',"quality":"stale"')

# The `ts` cell: `,"ts":"` + seconds (19 bytes) + `.` millis + micros + `Z","value":`.
_TS_HEAD: Final = b',"ts":"'
_TS_TAIL: Final = b'Z","value":'
_TS_RECORD: Final = np.dtype(
    [
        ("head", f"V{len(_TS_HEAD)}"),
        ("seconds", "V19"),
        ("millis", "V4"),
        ("micros", "V3"),
        ("tail", f"V{len(_TS_TAIL)}"),
    ]
)
_TS_HEAD_V: Final = np.frombuffer(_TS_HEAD, dtype=f"V{len(_TS_HEAD)}")[0]
_TS_TAIL_V: Final = np.frombuffer(_TS_TAIL, dtype=f"V{len(_TS_TAIL)}")[0]
_DOT3: Final = np.frombuffer(b"".join(b".%03d" % i for i in range(1000)), dtype="V4")
_DIG3: Final = np.frombuffer(b"".join(b"%03d" % i for i in range(1000)), dtype="V3")
# datetime64 prints years 1..9999 as four digits; outside that the record would not be fixed width.
_MIN_S: Final = -62_135_596_800  # 0001-01-01T00:00:00
_MAX_S: Final = 253_402_300_799  # 9999-12-31T23:59:59


def encode_batch(batch: Batch) -> bytes:
    """`batch` as wire lines: its readings, then each derived record, each line ending in `\\n`."""
    return _DEFAULT.encode(batch)


def encode_for_sink(batch: Batch) -> bytes:
    """`encode_batch` for sinks: a batch that cannot be encoded (a non-finite `ts`, a derived
    record orjson refuses) will never encode, so it is a `PermanentSinkError` (dead-lettered
    with the reason), not a retry that stalls the stream."""
    try:
        return _DEFAULT.encode(batch)
    except (ValueError, TypeError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise PermanentSinkError(f"cannot encode batch: {exc}") from exc


def encode_derived(records: list[dict[str, Any]]) -> bytes:
    """Derived records (feature dicts, alerts) as one JSON line each, in order."""
    return b"".join([orjson.dumps(r, option=_RECORD) for r in records])


@dataclass(frozen=True, slots=True)
class _Tails:
    """Per-schema cells: `,"unit":..,"quality":..` + the first column's key, per (sensor, stale)."""

    size: int
    cells: npt.NDArray[np.object_]  # index: sensor * 2 + stale
    keys: tuple[bytes, ...]  # `,"<name>":` for every extra column


class WireEncoder:
    """Encodes batches, keeping the per-sensor cells of `table` as it grows.

    The cells only ever grow, like the sensor table (a sensor's id and unit never change), so
    they are extended, not rebuilt, when new sensors appear. A lock guards growth only, so a
    sink may encode from a worker thread.
    """

    def __init__(self, table: SensorTable = SENSORS) -> None:
        self._table = table
        self._lock = threading.Lock()
        self._heads_list: list[bytes] = []
        self._tail_base: list[tuple[bytes, bytes]] = []
        self._heads: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self._tails: dict[tuple[str, ...], _Tails] = {}

    def encode(self, batch: Batch) -> bytes:
        n = len(batch)
        derived = encode_derived(batch.derived) if batch.derived else b""
        if n == 0:
            return derived
        names = tuple(batch.columns)
        heads, tails = self._cells(names)
        columns = list(batch.columns.values())
        width = 5 + max(2 * len(columns) - 1, 0)
        sensor = batch.sensor
        first = heads[sensor].tolist()
        first[0] = first[0][len(_END) :]  # no line before the first one to close
        stale = np.asarray(batch.stale, dtype=np.bool_)
        cells: list[bytes] = [b""] * (n * width)
        cells[0::width] = first
        cells[1::width] = _number_cells(batch.seq, np.int64)
        cells[2::width] = ts_cells(batch.ts)
        cells[3::width] = _number_cells(batch.value, np.float64)
        cells[4::width] = tails.cells[np.add(sensor * 2, stale, dtype=np.intp)].tolist()
        for j, column in enumerate(columns):
            cells[5 + 2 * j :: width] = _number_cells(column, np.float64)
            if j + 1 < len(columns):
                cells[6 + 2 * j :: width] = [tails.keys[j + 1]] * n
        cells.append(_END)
        cells.append(derived)
        return b"".join(cells)

    def _cells(self, names: tuple[str, ...]) -> tuple[npt.NDArray[np.object_], _Tails]:
        size = len(self._table)
        heads, tails = self._heads, self._tails.get(names)
        if tails is None or tails.size < size or len(heads) < size:
            with self._lock:
                heads, tails = self._grow(names)
        return heads, tails

    def _grow(self, names: tuple[str, ...]) -> tuple[npt.NDArray[np.object_], _Tails]:
        """Extend the sensor cells to every sensor known now and build the tails of `names`."""
        size = len(self._table)
        for idx in range(len(self._heads_list), size):
            sensor_id = orjson.dumps(self._table.sensor_id(idx))
            unit = b',"unit":' + orjson.dumps(self._table.unit(idx))
            self._heads_list.append(
                _END + b'{"kind":"reading","sensor_id":' + sensor_id + b',"seq":'
            )
            self._tail_base.append((unit + _QUALITY[0], unit + _QUALITY[1]))
        if len(self._heads) < size:
            heads = np.empty(size, dtype=object)
            heads[:] = self._heads_list[:size]
            self._heads = heads
        tails = self._tails.get(names)
        if tails is None or tails.size < size:
            keys = tuple(b"," + orjson.dumps(name) + b":" for name in names)
            lead = keys[0] if keys else b""
            cells = np.empty(2 * size, dtype=object)
            cells[:] = [base + lead for pair in self._tail_base[:size] for base in pair]
            tails = _Tails(size=size, cells=cells, keys=keys)
            self._tails[names] = tails
        return self._heads, tails


def _number_cells(column: npt.ArrayLike, dtype: type[np.generic]) -> list[bytes]:
    """Each number of `column` as JSON, the way orjson prints it (floats shortest round-trip)."""
    array = np.ascontiguousarray(column, dtype=dtype)
    return orjson.dumps(array, option=_NUMPY)[1:-1].split(b",")


def ts_cells(ts: npt.NDArray[np.float64]) -> list[bytes]:
    """`,"ts":"<ISO-8601 UTC, microseconds>Z","value":` per epoch-seconds value.

    Rounds exactly like `datetime.fromtimestamp` (the fraction to microseconds, half to even, a
    carry into the seconds), so the wire agrees with anything that formats through `datetime`.
    Only the distinct whole seconds of the batch (a handful) are formatted by numpy; each row
    then picks its seconds, millis and micros out of tables, as fixed-width byte records.
    """
    n = len(ts)
    frac, whole = np.modf(np.asarray(ts, dtype=np.float64))
    micros = np.rint(frac * 1e6)
    carry = np.floor(micros / 1e6)  # -1 for negative fractions, +1 when rounding reached 1e6
    whole += carry
    micros -= carry * 1e6
    lo, hi = (float(whole.min()), float(whole.max())) if n else (0.0, 0.0)
    if not (lo >= _MIN_S and hi <= _MAX_S):  # also catches NaN
        raise ValueError(f"ts outside years 1..9999 or not finite (min {lo}, max {hi})")
    seconds = whole.astype(np.int64)
    start = int(lo)
    span = int(hi) - start + 1
    if span <= max(n, 4096):
        distinct = np.arange(start, start + span, dtype=np.int64)
        pick = seconds - start
    else:
        distinct, pick = np.unique(seconds, return_inverse=True)
    texts = np.datetime_as_string(distinct.view("M8[s]")).astype("S19").view("V19")
    millis = np.floor(micros / 1000)
    out = np.empty(n, dtype=_TS_RECORD)
    out["head"] = _TS_HEAD_V
    out["seconds"] = texts.take(pick)
    out["millis"] = _DOT3.take(millis.astype(np.intp))
    out["micros"] = _DIG3.take((micros - millis * 1000).astype(np.intp))
    out["tail"] = _TS_TAIL_V
    cells: list[bytes] = out.view(f"S{_TS_RECORD.itemsize}").tolist()
    return cells


_DEFAULT: Final = WireEncoder()
