"""A batch's derived records (features, alerts) as the tuples binary COPY takes.

Why tuples through asyncpg's codecs here and numpy for the readings (`pgcopy`): a batch holds
thousands of readings but a handful of derived records (one features record per window, one
alert per state change), so their per-record Python cost does not matter.

Why every field is converted here, to the column's Python type: asyncpg refuses a value of the
wrong type (a string for a double) while encoding the COPY, for the whole COPY, with an error
that says nothing about the server, which is no refusal a retry could ever fix. So a record
whose field does not convert (an alert's `since` that is no ISO-8601 time, a `count` of "many")
is refused here, alone, with the reason; NULL (an absent field) is the table's to judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from daemon.batch import Batch
from daemon.sinks.postgres.schema import ALERT_COLUMNS, FEATURE_COLUMNS, names

_FEATURE_FIELDS = names(FEATURE_COLUMNS)
_ALERT_FIELDS = names(ALERT_COLUMNS)


@dataclass
class Records:
    """The tuples to COPY, the derived record each came from, and the records refused before
    any COPY (with the reason)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def add(self, record: dict[str, Any], fields: tuple[str, ...], kinds: dict[str, Any]) -> None:
        try:
            row = tuple(_convert(record.get(name), kinds[name], name) for name in fields)
        except (TypeError, ValueError, OverflowError) as exc:
            self.refused.append((record, f"postgres: {record.get('kind')} record refused: {exc}"))
            return
        self.rows.append(row)
        self.sources.append(record)

    def __len__(self) -> int:
        return len(self.rows)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError("contains a NUL character, which text cannot hold")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"must be an integer, got {type(value).__name__}")
    if value != int(value):
        raise ValueError(f"must be an integer, got {value!r}")
    return int(value)


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"must be a number, got {type(value).__name__}")
    return float(value)


def _time(value: Any) -> datetime:
    """An ISO-8601 time (what `threshold_alert` writes, `Z` for UTC) as an aware datetime."""
    if not isinstance(value, str):
        raise TypeError(f"must be an ISO-8601 string, got {type(value).__name__}")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"{value!r} names no UTC offset")
    return when


_FEATURE_KINDS: dict[str, Any] = dict.fromkeys(_FEATURE_FIELDS, _double) | {
    "sensor_id": _text,
    "window_end_seq": _integer,
    "count": _integer,
}
_ALERT_KINDS: dict[str, Any] = {
    "sensor_id": _text,
    "rule": _text,
    "state": _text,
    "since": _time,
    "ts": _time,
    "value": _double,
}


def _convert(value: Any, kind: Any, name: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise type(exc)(f"{name} {exc}") from None


def feature_records(batch: Batch) -> Records:
    """One tuple per `kind="features"` record, in `FEATURE_COLUMNS` order."""
    out = Records()
    for record in batch.derived:
        if record.get("kind") == "features":
            out.add(record, _FEATURE_FIELDS, _FEATURE_KINDS)
    return out


def alert_records(batch: Batch) -> Records:
    """One tuple per `kind="alert"` record, in `ALERT_COLUMNS` order, its times as datetimes."""
    out = Records()
    for record in batch.derived:
        if record.get("kind") == "alert":
            out.add(record, _ALERT_FIELDS, _ALERT_KINDS)
    return out
