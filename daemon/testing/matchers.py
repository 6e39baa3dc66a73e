"""What a test says about one record: each named field exact, approximately equal, or absent.

A record is what the sinks write (the wire's JSON objects), so an expectation is written the
way the output reads:

    { sensor_id = "t1", seq = 3, moving_avg = { approx = 20.1, tol = 0.01 },
      absent = ["normalized"] }

Fields a test does not name are not compared: a test says what it cares about and survives a
stage that adds a column. Times compare as instants whatever their spelling: a TOML datetime,
an ISO-8601 string (the wire's `ts`, an alert's `since`) or epoch seconds are the same moment.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from daemon.config import ConfigIssue
from daemon.config.core import got, join

MISSING: Any = object()  # a field the record does not have
DEFAULT_TOL = 1e-9


def epoch(value: Any) -> float | None:
    """Epoch seconds of a TOML datetime (naive: UTC) or an ISO-8601 string, else None."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return None


def show(value: Any) -> str:
    """A value as a test file would write it (TOML-like, one line)."""
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return repr(value)


def _instant(value: Any) -> float | None:
    """Epoch seconds of a time or a number; None for anything else."""
    return float(value) if _number(value) else epoch(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Exact:
    value: Any

    def matches(self, actual: Any) -> bool:
        want = self.value
        when, seen = _instant(want), _instant(actual)
        if when is not None and seen is not None and not (_number(want) and _number(actual)):
            return abs(seen - when) < 5e-7  # a time against a time or epoch seconds (to the µs)
        if isinstance(want, bool) or isinstance(actual, bool):
            return isinstance(want, bool) and isinstance(actual, bool) and want == actual
        if _number(want) and _number(actual):
            return bool(want == actual) or (math.isnan(want) and math.isnan(actual))
        return bool(type(want) is type(actual) and want == actual)

    def describe(self) -> str:
        return show(self.value)


@dataclass(frozen=True)
class Approx:
    value: float
    tol: float

    def matches(self, actual: Any) -> bool:
        return _number(actual) and abs(float(actual) - self.value) <= self.tol

    def describe(self) -> str:
        return f"{show(self.value)} +- {show(self.tol)}"


Matcher = Exact | Approx


@dataclass(frozen=True)
class Expectation:
    """A record's named fields, and the fields it must not have."""

    fields: tuple[tuple[str, Matcher], ...]
    absent: tuple[str, ...] = ()

    def mismatches(self, record: dict[str, Any]) -> list[tuple[str, str, str]]:
        """`(field, expected, got)` for each field that does not hold; empty: it matches."""
        out = []
        for name, matcher in self.fields:
            actual = record.get(name, MISSING)
            if actual is MISSING or not matcher.matches(actual):
                out.append((name, matcher.describe(), show(actual)))
        for name in self.absent:
            if name in record:
                out.append((name, "(absent)", show(record[name])))
        return out

    def matches(self, record: dict[str, Any]) -> bool:
        return not self.mismatches(record)

    def describe(self) -> str:
        parts = [f"{name} = {m.describe()}" for name, m in self.fields]
        if self.absent:
            parts.append(f"absent = {show(list(self.absent))}")
        return "{" + ", ".join(parts) + "}"


def parse_expectation(raw: Any, path: str, issues: list[ConfigIssue]) -> Expectation | None:
    """An `Expectation` from a TOML table, or None with issues naming the key."""
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(path, f"must be a table of fields, {got(raw)}"))
        return None
    before = len(issues)
    fields: list[tuple[str, Matcher]] = []
    absent: tuple[str, ...] = ()
    for name, value in raw.items():
        key = join(path, name)
        if name == "absent":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                issues.append(ConfigIssue(key, f"must be a list of field names, {got(value)}"))
            else:
                absent = tuple(value)
            continue
        matcher = parse_matcher(value, key, issues)
        if matcher is not None:
            fields.append((name, matcher))
    if not fields and not absent and len(issues) == before:
        issues.append(ConfigIssue(path, "names no field (give fields, or absent = [...])"))
    if len(issues) > before:
        return None
    return Expectation(tuple(fields), absent)


def parse_matcher(value: Any, path: str, issues: list[ConfigIssue]) -> Matcher | None:
    if isinstance(value, dict):
        return _approx(value, path, issues)
    if isinstance(value, dt.date | dt.time) and not isinstance(value, dt.datetime):
        issues.append(ConfigIssue(path, "must be a full date and time (a date or time alone)"))
        return None
    return Exact(value)


def _approx(table: dict[str, Any], path: str, issues: list[ConfigIssue]) -> Approx | None:
    unknown = [k for k in table if k not in ("approx", "tol")]
    if unknown or "approx" not in table:
        issues.append(
            ConfigIssue(
                path, "a table here must be { approx = NUMBER, tol = NUMBER } (tol optional)"
            )
        )
        return None
    value, tol = table["approx"], table.get("tol", DEFAULT_TOL)
    ok = True
    if not _number(value) or not math.isfinite(value):
        issues.append(ConfigIssue(join(path, "approx"), f"must be a finite number, {got(value)}"))
        ok = False
    if not _number(tol) or not tol >= 0 or not math.isfinite(tol):
        issues.append(ConfigIssue(join(path, "tol"), f"must be a number >= 0, {got(tol)}"))
        ok = False
    return Approx(float(value), float(tol)) if ok else None
