"""The input readings of a test: TOML tables into what a source would have read.

A reading names its `sensor_id` and `value`; `seq` and `ts` may be left out, and then continue
the sensor's own (seq + 1, ts + `interval_s`), so a test of a moving average or an alert's hold
time lists values, not bookkeeping. `ts` is epoch seconds, a TOML datetime or an ISO-8601
string; `unit` and `quality` ("ok", "stale") are optional; any other key is a float column a
stage would have added (to test a stage that reads one, like `threshold_alert` on `moving_avg`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from daemon.config import ConfigIssue, Range
from daemon.config.core import got, join
from daemon.config.fields import build
from daemon.testing.matchers import epoch

_READING_KEYS = ("sensor_id", "seq", "ts", "value", "unit", "quality")


@dataclass(frozen=True)
class InputReading:
    sensor_id: str
    seq: int | None  # None only while parsing: left out, the sensor's next
    ts: float
    value: float
    unit: str = ""
    stale: bool = False
    columns: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class InputKeys:
    """One input table's fixed keys (any other key is a column)."""

    sensor_id: Annotated[str, "the sensor"]
    value: Annotated[float, "the reading"]
    seq: Annotated[int | None, Range(ge=0, lt=2**63), "absent: the sensor's last + 1"] = None
    ts: Annotated[float | None, "epoch seconds or a datetime; absent: last + interval_s"] = None
    unit: Annotated[str, "the sensor's unit"] = ""
    quality: Annotated[Literal["ok", "stale"], "stale: a last-known-good repeat"] = "ok"

    def check(self) -> list[tuple[str, str]]:
        if not self.sensor_id:
            return [("sensor_id", "must not be empty")]
        if self.ts is not None and not math.isfinite(self.ts):
            return [("ts", f"must be a finite time, got {self.ts}")]
        return []


def parse_inputs(
    path: str, tables: Any, start: float, step: float, issues: list[ConfigIssue]
) -> tuple[InputReading, ...] | None:
    """The input readings; a reading without `seq` or `ts` continues its sensor's (the first
    at seq 1, `start`), or None with issues naming the key."""
    if not isinstance(tables, list) or not tables:
        issues.append(ConfigIssue(path, "at least one input reading is required"))
        return None
    last: dict[str, tuple[int, float]] = {}
    out: list[InputReading] = []
    for i, table in enumerate(tables):
        key = f"{path}[{i}]"
        reading = _reading(key, table, issues)
        if reading is None:
            continue
        seq, ts = last.get(reading.sensor_id, (0, start - step))
        if reading.seq is None:
            reading = dataclasses.replace(reading, seq=seq + 1)
        if math.isnan(reading.ts):
            reading = dataclasses.replace(reading, ts=ts + step)
        if out and [n for n, _ in reading.columns] != [n for n, _ in out[0].columns]:
            names, first = [n for n, _ in reading.columns], [n for n, _ in out[0].columns]
            issues.append(ConfigIssue(key, f"extra columns {names} differ from input[0]'s {first}"))
        last[reading.sensor_id] = (reading.seq or 0, reading.ts)
        out.append(reading)
    return tuple(out)


def _reading(path: str, table: Any, issues: list[ConfigIssue]) -> InputReading | None:
    """One reading as written (`seq` None, `ts` NaN where left out), or None with issues."""
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, f"must be a table (a reading), {got(table)}"))
        return None
    fixed = {k: v for k, v in table.items() if k in _READING_KEYS}
    when = epoch(fixed.get("ts"))
    if when is not None:
        fixed["ts"] = when  # a TOML datetime or an ISO-8601 string
    keys = build(InputKeys, fixed, path, issues)
    columns = []
    for name, column in table.items():
        if name in _READING_KEYS:
            continue
        if isinstance(column, int | float) and not isinstance(column, bool):
            columns.append((name, float(column)))
        else:
            issues.append(
                ConfigIssue(join(path, name), f"a column must be a number, {got(column)}")
            )
    if keys is None or len(columns) < len(table) - len(fixed):
        return None
    return InputReading(
        sensor_id=keys.sensor_id,
        seq=keys.seq,
        ts=math.nan if keys.ts is None else keys.ts,
        value=keys.value,
        unit=keys.unit,
        stale=keys.quality == "stale",
        columns=tuple(columns),
    )
