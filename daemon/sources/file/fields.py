"""Field rules for replayed readings, one at a time (the definition) and by column (the fast way).

The per-value functions are the contract: what a valid `seq`, `ts`, `value` or `quality` is and
why a bad one is rejected. The column functions give the same answers for whole columns of
well-formed input and return None the moment anything is unusual; the parsers then fall back to
the per-value functions for that chunk, so a reject always comes with its exact reason and line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from daemon.batch import QUALITIES

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

REQUIRED = ("sensor_id", "seq", "ts", "value")
OPTIONAL = ("unit", "quality")
_INT64_MAX = 2**63 - 1


class FieldError(ValueError):
    """One field of one line is unusable; the message is the dead-letter reason."""


def sensor_id(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise FieldError(f"sensor_id must be a non-empty string, got {raw!r}")
    return raw


def seq(raw: object) -> int:
    """A non-negative integer (an int in JSON; an integer literal in CSV)."""
    if isinstance(raw, str):
        try:
            value = int(raw)
        except ValueError:
            raise FieldError(f"seq must be an integer, got {raw!r}") from None
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise FieldError(f"seq must be an integer, got {raw!r}")
    if not 0 <= value <= _INT64_MAX:
        raise FieldError(f"seq must be >= 0 and fit 64 bits, got {raw!r}")
    return value


def value(raw: object, *, text_ok: bool) -> float:
    """A finite number (in JSON a number, not a string; CSV cells are text by nature)."""
    numeric = isinstance(raw, int | float) and not isinstance(raw, bool)
    if not (numeric or (text_ok and isinstance(raw, str))):
        raise FieldError(f"value must be a number, got {raw!r}")
    try:
        number = float(raw)  # type: ignore[arg-type]  # checked just above
    except (ValueError, OverflowError):
        raise FieldError(f"value must be a number, got {raw!r}") from None
    if not math.isfinite(number):
        raise FieldError(f"value must be finite, got {raw!r}")
    return number


def timestamp(raw: object) -> float:
    """Epoch seconds (a number, or text holding one) or ISO-8601 text; no offset means UTC."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        number = float(raw)
    elif isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            number = _iso(raw)
    else:
        raise FieldError(f"bad timestamp {raw!r}: expected epoch seconds or ISO-8601")
    if not math.isfinite(number):
        raise FieldError(f"bad timestamp {raw!r}: not finite")
    return number


def _iso(raw: str) -> float:
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise FieldError(f"bad timestamp {raw!r}: expected epoch seconds or ISO-8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def unit(raw: object) -> str:
    if not isinstance(raw, str):
        raise FieldError(f"unit must be a string, got {raw!r}")
    return raw


def stale(raw: object) -> bool:
    """`quality`: "ok" or "stale" (absent, or an empty CSV cell, means "ok")."""
    if raw == "stale":
        return True
    if raw in ("ok", ""):
        return False
    raise FieldError(f"quality must be 'ok' or 'stale', got {raw!r}")


def quality(raw: object) -> int:
    """`quality` in a replayed file: any of `QUALITIES` (what ingestd's own sinks write, so its
    output replays as it was), absent or an empty CSV cell meaning "ok"; its code."""
    if raw == "":
        return 0
    if isinstance(raw, str) and raw in QUALITIES:
        return QUALITIES.index(raw)
    allowed = ", ".join(map(repr, QUALITIES))
    raise FieldError(f"quality must be one of {allowed}, got {raw!r}")


# --- whole columns: None means "not sure, take the per-value path" ---------------------------


def seq_column(col: Sequence[bytes]) -> I64 | None:
    """`seq` from CSV cells, or None unless every one is a non-negative 64-bit integer."""
    try:
        out = np.fromiter(map(int, col), dtype=np.int64, count=len(col))
    except (ValueError, OverflowError):
        return None
    return None if (out < 0).any() else out


def float_column(col: Sequence[bytes] | Sequence[str]) -> F64 | None:
    """Numbers from text cells, or None if any is not a finite number."""
    try:
        out = np.fromiter(map(float, col), dtype=np.float64, count=len(col))
    except ValueError:
        return None
    return out if np.isfinite(out).all() else None


def timestamp_column(col: Sequence[bytes] | Sequence[str]) -> F64 | None:
    """Epoch seconds, or uniform `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` text, else None."""
    out = float_column(col)
    if out is not None or not col:
        return out
    try:
        return _iso_column(np.array(col, dtype=np.bytes_))
    except UnicodeEncodeError:
        return None


# byte positions that must be digits / hold a separator in YYYY-MM-DDTHH:MM:SS
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATORS = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":"}


def _iso_column(col: npt.NDArray[np.bytes_]) -> F64 | None:
    if not _iso_shaped(col):
        return None
    try:
        stripped = col.astype(f"S{col.dtype.itemsize - 1}")  # without the Z
        micros = stripped.astype("datetime64[us]").astype(np.int64)
    except ValueError:
        return None  # e.g. month 13: fromisoformat words the reason
    out: F64 = micros.astype(np.float64) / 1e6
    return out


def _iso_shaped(col: npt.NDArray[np.bytes_]) -> bool:
    """Every cell is `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`, all of one length. Checked on the bytes,
    as numpy's datetime parser alone accepts more than `datetime.fromisoformat` (" 026-...")."""
    width = col.dtype.itemsize
    if col.shape[0] == 0 or not 20 <= width <= 27 or width == 21:
        return False
    if (np.char.str_len(col) != width).any():
        return False  # mixed shapes: rare, left to fromisoformat
    grid = col.view(np.uint8).reshape(col.shape[0], width)
    digit = (grid >= ord("0")) & (grid <= ord("9"))
    if not digit[:, _DIGITS].all() or not digit[:, 20 : width - 1].all():
        return False
    if any((grid[:, pos] != sep[0]).any() for pos, sep in _SEPARATORS.items()):
        return False
    if width > 20 and (grid[:, 19] != ord(".")).any():
        return False
    return not (grid[:, width - 1] != ord("Z")).any()
