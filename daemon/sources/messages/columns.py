"""Reading columns from decoded fields: what both decoding paths of `payload` build alike.

Each function takes a whole column and returns None at the first doubt (a stamp that is not a
number or uniform ISO text, a seq past 64 bits, a stamp before 1970 for a derived seq); the
caller then takes the per-element path, which words the reason of each reject.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from daemon.batch import Batch
from daemon.sources.file import fields as ff


def batch_of(sensor: Any, seq: Any, ts: Any, value: Any, *, stale: Any, interpolated: Any) -> Batch:
    """The columns as a Batch; `interpolated` kept only when some row is (see daemon.batch)."""
    if interpolated is None:
        return Batch.from_columns(sensor, seq, ts, value, stale)
    mask = np.asarray(interpolated, dtype=np.bool_)
    return Batch.from_columns(
        sensor, seq, ts, value, stale, interpolated=mask if mask.any() else None
    )


def stamps(raw: list[Any], received: list[float]) -> ff.F64 | None:
    """`ts` as epoch seconds, the receive time where a reading has none."""
    if None in raw:
        raw = [r if s is None else s for s, r in zip(raw, received, strict=True)]
    return stamp_column(raw)


def stamp_column(raw: list[Any]) -> ff.F64 | None:
    """Epoch seconds from numbers, or from uniform ISO text (None: anything else)."""
    kinds = set(map(type, raw))
    if kinds <= {int, float}:
        try:
            out = np.array(raw, dtype=np.float64)
        except OverflowError:
            return None
        return out if np.isfinite(out).all() else None
    if kinds == {str}:
        return ff.timestamp_column(raw)
    return None  # mixed: the per-element path parses each


def seqs(raw: list[int | None], ts: ff.F64) -> ff.I64 | None:
    """`seq` as given (ints or None only: the callers checked), else from `ts`; None if any is
    negative or past 64 bits."""
    try:  # the common case first: every seq given, no scan for None
        out: ff.I64 = np.array(raw, dtype=np.int64)
    except OverflowError:
        return None
    except TypeError:  # some None: seq = ts in micros there
        derived = micros(ts)
        if derived is None:
            return None
        if raw.count(None) == len(raw):
            return derived  # the common "no seq at all": no list per reading
        raw = [m if s is None else s for s, m in zip(raw, derived.tolist(), strict=True)]
        try:
            out = np.array(raw, dtype=np.int64)
        except OverflowError:
            return None
    return None if (out < 0).any() else out


def micros(ts: ff.F64) -> ff.I64 | None:
    """`ts` in whole microseconds since the epoch (None: out of the 64-bit range or negative)."""
    scaled = np.rint(ts * 1e6)
    if not (np.isfinite(scaled).all() and (scaled >= 0).all() and (scaled < 2.0**63).all()):
        return None
    out: ff.I64 = scaled.astype(np.int64)
    return out
