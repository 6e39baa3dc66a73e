"""A Batch as bytes for the spool, and back — in a later process too.

Why raw numpy bytes and not JSON: measured on a 1,000-reading batch with 100 sensors and two extra
columns, this layout encodes in ~0.1 ms and decodes in ~0.1 ms at 47 KB, where orjson with
OPT_SERIALIZE_NUMPY took ~0.3 ms to encode, ~1.5 ms to decode (rebuilding arrays from lists) and
103 KB. A spool replays at the speed of its decoder, so that matters after an outage.

Sensor indexes are per process (the intern table), so a payload carries the batch's own table of
`sensor_id` strings and units, and a local int32 index per row; decoding interns them again.

Layout, little-endian: u32 rows, u32 meta length, meta (orjson: ids, units, column names, derived
records; space-padded to a multiple of 8), then the columns: seq i8, ts f8, value f8, each extra
column f8 (in `meta.cols` order), local sensor index i4, stale u1.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from daemon.batch import Batch
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


def encode_batch(batch: Batch) -> bytes:
    n = len(batch)
    present = np.zeros(len(SENSORS), dtype=np.bool_)
    present[batch.sensor] = True
    used = np.flatnonzero(present)
    local = (np.cumsum(present, dtype=np.int32) - 1)[batch.sensor]
    meta = orjson.dumps(
        {
            "v": _VERSION,
            "ids": SENSORS.ids_array()[used].tolist(),
            "units": SENSORS.units_array()[used].tolist(),
            "cols": list(batch.columns),
            "derived": batch.derived,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    meta += b" " * (-(len(meta) + _PREFIX.size) % 8)
    parts = [
        _PREFIX.pack(n, len(meta)),
        meta,
        batch.seq.astype("<i8", copy=False).tobytes(),
        batch.ts.astype("<f8", copy=False).tobytes(),
        batch.value.astype("<f8", copy=False).tobytes(),
        *(col.astype("<f8", copy=False).tobytes() for col in batch.columns.values()),
        local.astype("<i4", copy=False).tobytes(),
        batch.stale.astype(np.bool_, copy=False).tobytes(),
    ]
    return b"".join(parts)


def decode_batch(payload: bytes) -> Batch:
    """The batch `encode_batch` wrote; raises PayloadError for anything else."""
    try:
        n, meta_len = _PREFIX.unpack_from(payload)
        meta: dict[str, Any] = orjson.loads(payload[_PREFIX.size : _PREFIX.size + meta_len])
        names: list[str] = meta["cols"]
        ids: list[str] = meta["ids"]
        units: list[str] = meta["units"]
        derived: list[dict[str, Any]] = meta["derived"]
        version = meta["v"]
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PayloadError(f"bad header: {exc}") from None
    if version != _VERSION:
        raise PayloadError(f"unknown payload version {version!r}")
    expected = _PREFIX.size + meta_len + n * (8 * (3 + len(names)) + 4 + 1)
    if len(payload) != expected or len(ids) != len(units):
        raise PayloadError(f"payload is {len(payload)} bytes, layout says {expected}")
    offset = _PREFIX.size + meta_len

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
    stale = take("u1", np.bool_)
    if n and (int(local.min()) < 0 or int(local.max()) >= len(ids)):
        raise PayloadError("sensor index out of range")
    table = np.array(
        [SENSORS.intern(sid, unit) for sid, unit in zip(ids, units, strict=True)], dtype=np.int32
    )
    sensor = table[local] if n else np.zeros(0, dtype=np.int32)
    return Batch(
        sensor=sensor,
        seq=seq,
        ts=ts,
        value=value,
        stale=stale,
        columns=columns,
        derived=derived,
    )
