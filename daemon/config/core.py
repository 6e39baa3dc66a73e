"""The vocabulary every config module shares: bounds, issues, annotation metadata, key paths.

It sits below `types`, `schema` and `coerce` so that none of them imports another in a circle.
"""

from __future__ import annotations

import math
import reprlib
import typing
from dataclasses import dataclass
from typing import Any, get_args, get_origin


@dataclass(frozen=True)
class Range:
    """Numeric bounds for a field; any combination of the four.

    It bounds the number it annotates: on `list[Annotated[int, Range(ge=1)]]` each item, on
    `Annotated[int | None, Range(ge=1)]` the integer when one is given.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def violation(self, value: float) -> str | None:
        if math.isnan(value):
            return "must be a number, not nan"  # nan compares false to every bound
        if self.ge is not None and value < self.ge:
            return f"must be >= {_num(self.ge)}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {_num(self.gt)}"
        if self.le is not None and value > self.le:
            return f"must be <= {_num(self.le)}"
        if self.lt is not None and value >= self.lt:
            return f"must be < {_num(self.lt)}"
        return None

    def describe(self) -> str:
        parts = [
            f"{op} {_num(v)}"
            for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if v is not None
        ]
        return ", ".join(parts)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ConfigError(Exception):
    """Raised with every issue found; the CLI prints them and exits 78 (EX_CONFIG)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class DurationMarker:
    """The `Annotated` metadata that makes a float field a duration (see `types.Duration`).

    A marker rather than a float subclass so a field keeps a plain `float` value and a plain
    `5.0` default that mypy accepts.
    """

    def __repr__(self) -> str:
        return "DURATION"


DURATION = DurationMarker()


def unwrap(hint: Any) -> tuple[Any, Range | None, str]:
    """`(type, range, doc)` of an annotation; a duration's type is the `DURATION` marker."""
    if get_origin(hint) is not typing.Annotated:
        return hint, None, ""
    base, *meta = get_args(hint)
    rng: Range | None = None
    doc = ""
    for m in meta:
        if isinstance(m, Range):
            rng = m
        elif isinstance(m, DurationMarker):
            base = DURATION
        elif isinstance(m, str):
            doc = m
    return base, rng, doc


def join(path: str, key: str) -> str:
    """`path.key`, the key quoted as TOML would when it is not a bare key.

    Quoting also escapes what cannot be printed (a lone surrogate from a `\\ud800` escape would
    otherwise make writing the error to stderr raise).
    """
    if not key or not all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        key = quote(key)
    return f"{path}.{key}" if path else key


def quote(text: str) -> str:
    """`text` as a double-quoted string with the unprintable and the quotes escaped."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40


def got(raw: Any) -> str:
    """`got <type> <value>` for an error, bounded: a value may be a megabyte or nested deep."""
    return f"got {type(raw).__name__} {short(raw)}"


def short(raw: Any) -> str:
    """A bounded repr; it never recurses deeper than three levels nor prints 4300 digits."""
    try:
        return _SHORT.repr(raw)
    except ValueError:  # an int too long for str(); reprlib converts it before truncating
        return "<a very large integer>"
