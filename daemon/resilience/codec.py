"""A Batch as bytes for the spool, and back — in a later process too.

Why raw numpy bytes and not JSON: measured on a 1,000-reading batch with 100 sensors and two extra
columns, this layout encodes in ~0.1 ms and decodes in ~0.1 ms at 47 KB, where orjson with
OPT_SERIALIZE_NUMPY took ~0.3 ms to encode, ~1.5 ms to decode (rebuilding arrays from lists) and
103 KB. A spool replays at the speed of its decoder, so that matters after an outage.

Sensor indexes are per process (the intern table), so a payload carries the batch's own table of
`sensor_id` strings and units, and a local int32 index per row; decoding interns them again.

Layout, little-endian: u32 rows, u32 meta length, meta (orjson: ids, units, column names, derived
records, and `copy: true` on a second sink's copy; space-padded to a multiple of 8), then the
columns: seq i8, ts f8, value f8, each extra column f8 (in `meta.cols` order), local sensor index
i4, quality u1 (`batch.QUALITIES` codes: 0 ok, 1 stale, 2 interpolated; an older ingestd wrote
the same byte as its `stale` flag, 0 or 1, so old spools read unchanged, and an older ingestd
reads a 2 as stale).

Why `copy` lives in the payload: with several sinks, one batch can be spooled by each of them,
but it was counted once (`spooled`) at the fan-out; so exactly one of the copies carries the
count into the replay, and the others say so. A payload without the key (an older ingestd's) is
counted, as it always was. Validation (`payload_problem`) is separate from decoding because it
runs in the spool's thread, and decoding interns sensor ids, which only the event loop may.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from daemon.batch import Batch, qualities_from_bytes
from daemon.sensors import SENSORS

_PREFIX = struct.Struct("<II")
_VERSION = 1


class PayloadError(ValueError):
    """The bytes are not a batch this codec wrote (a CRC collision, or a foreign version)."""


def payload_readings(payload: bytes) -> int:
    """The number of readings in an encoded batch, without decoding it (0 if unreadable)."""
    if len(payload) < _PREFIX.size:
        return 0
    return int(_PREFIX.unpack_from(payload)[0])


def encode_batch(batch: Batch, *, copy: bool = False) -> bytes:
    """`batch` as a payload; `copy`: a second sink's copy of a batch another spool counts."""
    n = len(batch)
    present = np.zeros(len(SENSORS), dtype=np.bool_)
    present[batch.sensor] = True
    used = np.flatnonzero(present)
    local = (np.cumsum(present, dtype=np.int32) - 1)[batch.sensor]
    head: dict[str, Any] = {
        "v": _VERSION,
        "ids": SENSORS.ids_array()[used].tolist(),
        "units": SENSORS.units_array()[used].tolist(),
        "cols": list(batch.columns),
        "derived": batch.derived,
    }
    if copy:
        head["copy"] = True
    meta = orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)
    meta += b" " * (-(len(meta) + _PREFIX.size) % 8)
    parts = [
        _PREFIX.pack(n, len(meta)),
        meta,
        batch.seq.astype("<i8", copy=False).tobytes(),
        batch.ts.astype("<f8", copy=False).tobytes(),
        batch.value.astype("<f8", copy=False).tobytes(),
        *(col.astype("<f8", copy=False).tobytes() for col in batch.columns.values()),
        local.astype("<i4", copy=False).tobytes(),
        batch.quality_bytes().tobytes(),
    ]
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Layout:
    rows: int
    meta: dict[str, Any]
    columns_at: int


def _layout(payload: bytes) -> _Layout:
    """The checked layout of a payload (no sensor interned); raises PayloadError."""
    try:
        n, meta_len = _PREFIX.unpack_from(payload)
        meta: dict[str, Any] = orjson.loads(payload[_PREFIX.size : _PREFIX.size + meta_len])
        names: list[str] = meta["cols"]
        ids: list[str] = meta["ids"]
        units: list[str] = meta["units"]
        version = meta["v"]
        derived: list[dict[str, Any]] = meta["derived"]
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PayloadError(f"bad header: {exc}") from None
    if version != _VERSION:
        raise PayloadError(f"unknown payload version {version!r}")
    expected = _PREFIX.size + meta_len + n * (8 * (3 + len(names)) + 4 + 1)
    if len(payload) != expected or len(ids) != len(units) or not isinstance(derived, list):
        raise PayloadError(f"payload is {len(payload)} bytes, layout says {expected}")
    offset = _PREFIX.size + meta_len
    if n:
        local = np.frombuffer(
            payload, dtype="<i4", count=n, offset=offset + n * 8 * (3 + len(names))
        )
        if int(local.min()) < 0 or int(local.max()) >= len(ids):
            raise PayloadError("sensor index out of range")
    return _Layout(n, meta, offset)


def payload_problem(payload: bytes) -> str | None:
    """Why `payload` cannot be decoded, or None; thread-safe (interns nothing)."""
    try:
        _layout(payload)
    except PayloadError as exc:
        return str(exc)
    return None


def decode_batch(payload: bytes) -> Batch:
    """The batch `encode_batch` wrote; raises PayloadError for anything else."""
    return decode_spooled(payload)[0]


def decode_spooled(payload: bytes) -> tuple[Batch, bool]:
    """The batch and whether it is a copy (see the module doc); raises PayloadError."""
    layout = _layout(payload)
    n, meta, offset = layout.rows, layout.meta, layout.columns_at
    names: list[str] = meta["cols"]

    def take(dtype: str, native: type[np.generic]) -> Any:
        nonlocal offset
        arr = np.frombuffer(payload, dtype=dtype, count=n, offset=offset).astype(native)
        offset += n * np.dtype(dtype).itemsize
        return arr

    seq = take("<i8", np.int64)
    ts = take("<f8", np.float64)
    value = take("<f8", np.float64)
    columns = {name: take("<f8", np.float64) for name in names}
    local = take("<i4", np.int32)
    stale, interpolated = qualities_from_bytes(take("u1", np.uint8))
    table = np.array(
        [SENSORS.intern(sid, unit) for sid, unit in zip(meta["ids"], meta["units"], strict=True)],
        dtype=np.int32,
    )
    sensor = table[local] if n else np.zeros(0, dtype=np.int32)
    batch = Batch(
        sensor=sensor,
        seq=seq,
        ts=ts,
        value=value,
        stale=stale,
        columns=columns,
        derived=meta["derived"],
        interpolated=interpolated,
    )
    return batch, bool(meta.get("copy", False))
