"""Timestamps as wire text for a whole column: `,"ts":"<ISO-8601 UTC, microseconds>Z","value":`.

Rounds exactly like `datetime.fromtimestamp` (the fraction to microseconds, half to even, a carry
into the seconds), so the wire agrees with anything that formats through `datetime`. Only the
distinct whole seconds of a batch (a handful) are formatted, by numpy; each row then picks its
seconds, milliseconds and microseconds out of tables, as pieces of uint64 words (see
`wire_layout`).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt

from daemon.wire.layout import U64, Field, Piece, constant, pack, words_table

_HEAD: Final = constant(b',"ts":"')
_TAIL: Final = constant(b'Z","value":')
# datetime64 prints years 1..9999 as four digits; outside that the text would not be fixed width.
_MIN_S: Final = -62_135_596_800  # 0001-01-01T00:00:00
_MAX_S: Final = 253_402_300_799  # 9999-12-31T23:59:59


def ts_field(ts: npt.NDArray[np.float64]) -> Field:
    """The `ts` text of every row, with the keys around it; ValueError for a `ts` outside years
    1..9999 or not finite."""
    n = len(ts)
    frac, whole = np.modf(np.asarray(ts, dtype=np.float64))
    micros = np.rint(frac * 1e6)
    if n and not (micros.min() >= 0.0 and micros.max() < 1e6):  # before 1970, or a round-up
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
    texts = np.datetime_as_string(distinct.view("M8[s]")).astype("S24").view("<u8")
    texts = texts.reshape(-1, 3).astype(np.uint64, copy=False)  # 19 characters: 8 + 8 + 3
    micro = micros.astype(np.int64)
    milli = micro // 1000
    pieces: list[Piece] = [
        (texts[:, 0].take(pick, mode="clip"), 8),
        (texts[:, 1].take(pick, mode="clip"), 8),
        (texts[:, 2].take(pick, mode="clip"), 3),
        (_millis().take(milli, mode="clip"), 4),
        (_micros().take(micro - milli * 1000, mode="clip"), 3),
    ]
    return Field(_HEAD.pieces + pieces + _TAIL.pieces, _HEAD.width + 26 + _TAIL.width)


def ts_cells(ts: npt.NDArray[np.float64]) -> list[bytes]:
    """`ts_field` as one bytes object per row (for tests and benchmarks, not the hot path)."""
    words, width = pack(len(ts), [ts_field(ts)])
    rows = np.ascontiguousarray(words.T).view(np.uint8).reshape(len(ts), -1)
    return [bytes(row[:width]) for row in rows]


@functools.cache
def _millis() -> U64:
    return words_table([b".%03d" % i for i in range(1000)])


@functools.cache
def _micros() -> U64:
    return words_table([b"%03d" % i for i in range(1000)])
