"""Numbers as JSON text for a whole column at once: `number_field` (see `wire_layout`).

Every row's text is exactly what orjson prints for its number; where a number is narrower than
the widest of the batch, the field holds NULs (a blank leading zero, trailing zero, minus sign).

Why: printing a column through orjson means a Python object per number to cut it out of the
array's text and another step to join it back, ~100 ns a number. Here the digits come from
integer arithmetic on the whole column and 3-digit tables, and pieces of text are shifted into
words: a few numpy passes per column, with the GIL released.

When that is exact: a float on the 1e-6 grid (`x == rint(x * 1e6) / 1e6`, which is what rounding
to at most 6 decimals gives) with 1e-5 <= |x| < 4e9, or zero. There the grid is coarser than the
spacing of floats (below 2**32 it is under 1e-6), so no other decimal of at most 6 places rounds
to x, nor any with fewer digits: the shortest round-trip text, which orjson prints, is the grid
decimal without its trailing zeros (one kept after the point), in positional notation (orjson
uses exponents below 1e-5). Integers are exact below 1e15. Anything else (NaN, infinities, finer
floats) is printed by orjson itself and patched in, so the text is always orjson's, with one
exception on purpose: -0.0 prints as `0.0` (it equals 0, and a window that rounds to zero must
not read as negative), on every path (`x + 0.0` before orjson, `x < 0` for the minus sign).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson

from daemon.wire.layout import I64, U8, U64, Field, Piece, words_table

Bools = npt.NDArray[np.bool_]

_NUMPY: Final = orjson.OPT_SERIALIZE_NUMPY
_MILLION: Final = 1_000_000
_MAX_UNITS: Final = 4 * 10**15  # |x| < 4e9: the 1e-6 grid is coarser than the float spacing
_MIN_UNITS: Final = 10  # |x| >= 1e-5: orjson prints positional notation
_MAX_INT: Final = 10**15
_MINUS: Final = ord("-")
_DOT: Final = ord(".")
_COMMA: Final = ord(",")


def number_field(column: npt.ArrayLike) -> Field:
    """orjson's text of every number of `column` (integers as int64, the rest as float64)."""
    array = np.asarray(column)
    ints = array.dtype.kind in "iub"
    x = np.ascontiguousarray(array, dtype=np.int64 if ints else np.float64)
    if x.shape[0] == 0:
        return Field([], 0)
    if ints:
        inside_range = x.min() > -_MAX_INT and x.max() < _MAX_INT
        exact = None if inside_range else (x > -_MAX_INT) & (x < _MAX_INT)
        inside = x if exact is None else np.where(exact, x, 0)
        pieces = _decimal(np.abs(inside), inside < 0, fraction=False)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            units = np.rint(x * 1e6)
            size = np.abs(units).astype(np.int64)
            exact = units / 1e6 == x  # on the grid (NaN and infinities are not)
            exact &= ((size - _MIN_UNITS).view(np.uint64) < _MAX_UNITS) | (size == 0)
        negative = x < 0  # not signbit: -0.0 prints as 0.0
        if exact.all():
            exact = None
        elif np.count_nonzero(exact) < x.shape[0] // 2:  # mostly finer floats: orjson for all
            return _orjson_field(x)
        else:
            size = np.where(exact, size, 0)
            negative &= exact
        pieces = _decimal(size, negative, fraction=True)
    width = sum(w for _, w in pieces)
    if exact is None:
        return Field(pieces, width)
    rows = np.flatnonzero(~exact)
    rest = x[rows]  # a contiguous copy
    text = orjson_text(rest if ints else rest + 0.0)
    if text.shape[1] > width:
        pieces.append((0, text.shape[1] - width))
    return Field(pieces, max(width, text.shape[1]), (rows, text))


def _orjson_field(x: npt.NDArray[np.generic]) -> Field:
    """orjson's text of every number, cut at the commas into 8-byte pieces (-0.0 as 0.0)."""
    text = orjson_text(np.add(x, 0.0))
    width = text.shape[1]
    words = np.zeros((x.shape[0], -(-width // 8) * 8), dtype=np.uint8)
    words[:, :width] = text
    columns = words.view("<u8").astype(np.uint64, copy=False).T
    pieces: list[Piece] = [
        (np.ascontiguousarray(columns[j]), min(8, width - 8 * j)) for j in range(columns.shape[0])
    ]
    return Field(pieces, width)


def orjson_text(column: npt.NDArray[np.generic]) -> U8:
    """orjson's text of each number of a numpy column, `(n, widest)`, NUL-padded at the end."""
    text = np.frombuffer(orjson.dumps(column, option=_NUMPY), dtype=np.uint8)[1:-1]
    if text.shape[0] == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    commas = np.flatnonzero(text == _COMMA)
    starts = np.concatenate(([0], commas + 1))
    ends = np.append(commas, text.shape[0])
    at = starts[:, None] + np.arange(int((ends - starts).max()))
    slots: U8 = text.take(np.minimum(at, text.shape[0] - 1))
    slots[at >= ends[:, None]] = 0
    return slots


def _decimal(units: I64, negative: Bools, fraction: bool) -> list[Piece]:
    """Pieces of the text of `units` (>= 0; millionths when `fraction`), minus where `negative`."""
    whole = units // _MILLION if fraction else units
    digits = len(str(int(whole.max())))
    pieces: list[Piece] = []
    if negative.any():
        pieces.append((negative.astype(np.uint64) * np.uint64(_MINUS), 1))
    groups = (digits + 2) // 3
    for j in reversed(range(groups)):  # the most significant group of three digits first
        scaled = whole // 1000**j if j else whole
        if j == groups - 1:  # the leading group: only its own digits, blank above the number
            width, value = digits - 3 * j, scaled
            index = value + 1000 * (2 - (whole >= 1000**j)) if j else value + 1000
        else:  # all three digits, or lead (blank zeros), or blank
            width, value = 3, scaled - scaled // 1000 * 1000
            mode = 2 - (whole >= 1000**j) if j else 1
            index = value + 1000 * (mode - (whole >= 1000 ** (j + 1)))
        pieces.append((_int_table(width).take(index, mode="clip"), width))
    if fraction:
        places, frac = _places(units - whole * _MILLION)
        pieces.append((_DOT, 1))
        for h in range(0, places, 3):  # groups of (up to) three places from the point on
            width = min(3, places - h)
            table = _frac_table(width, h == 0)
            rest = 10 ** (places - h - width)  # the scale of the places after this group
            if rest == 1:  # the last group: its trailing zeros are blank
                value = frac - frac // 10**width * 10**width if h else frac
                pieces.append((table[10**width :].take(value, mode="clip"), width))
            else:
                scaled = frac // rest
                zero_tail = scaled * rest == frac  # no nonzero place after this group
                pieces.append((table.take(scaled + 10**width * zero_tail, mode="clip"), width))
    return pieces


def _places(frac: I64) -> tuple[int, I64]:
    """The fewest decimal places (1..6) that every value of `frac` (millionths) needs, and the
    values counted in that last place: 3-decimal readings print 3 places, not 6. (A binary
    search over the trailing zeros all values share, since divisibility by 10**z is monotone
    in z; each test looks at a sample first, which settles most failing ones cheaply.)"""
    lo, hi = 0, 5  # shared trailing zeros: at least lo, at most hi
    while lo < hi:
        z = (lo + hi + 1) // 2
        unit = 10**z
        sample = frac[:64]
        if (sample // unit * unit == sample).all() and (frac // unit * unit == frac).all():
            lo = z
        else:
            hi = z - 1
    return 6 - lo, frac // 10**lo if lo else frac


@functools.cache
def _int_table(width: int) -> U64:
    """At `v + 1000 * mode` (v < 1000): the last `width` characters of v as three digits (mode
    0), without its leading zeros (mode 1; "0" for zero), or blank (mode 2)."""
    full = [b"%03d" % v for v in range(1000)]
    lead = [(b"%3d" % v).replace(b" ", b"\0") for v in range(1000)]
    return words_table([t[3 - width :] for t in full + lead + [b"\0\0\0"] * 1000])


@functools.cache
def _frac_table(width: int, first: bool) -> U64:
    """At `v + 10**width * zero_tail` for a group of `width` places: all its digits, or (no
    nonzero place follows) its trailing zeros blank, the first place of the number kept."""
    full = [b"%0*d" % (width, v) for v in range(10**width)]
    strip = [t.rstrip(b"0").ljust(width, b"\0") for t in full]
    if first:
        strip = [t if t.strip(b"\0") else b"0" + t[1:] for t in strip]
    return words_table(full + strip)
