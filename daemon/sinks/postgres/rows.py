"""A batch as the record tuples binary COPY takes, built column-wise.

Why column-wise: a Python loop per reading is the cost that dominates a database sink. The
sensor ids and units are gathered from `SENSORS` with one numpy take each, every column becomes a
list with one `tolist()`, and the rows are one `zip`. Timestamps become aware UTC datetimes (what
asyncpg's timestamptz codec takes), rounded to microseconds like PostgreSQL itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.batch import Batch
from daemon.sensors import SENSORS
from daemon.sinks.postgres.schema import FEATURE_COLUMNS, names

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FEATURE_FIELDS = names(FEATURE_COLUMNS)


def _timestamps(ts: list[float]) -> list[datetime]:
    # epoch + timedelta is exact to the microsecond and faster than fromtimestamp per row
    return [_EPOCH + timedelta(microseconds=round(t * 1_000_000)) for t in ts]


def reading_records(batch: Batch) -> list[tuple[Any, ...]]:
    """One tuple per reading, in `READING_COLUMNS` order; absent stage columns are NULL."""
    n = len(batch)
    if n == 0:
        return []
    ids = SENSORS.ids_array()[batch.sensor].tolist()
    units = SENSORS.units_array()[batch.sensor].tolist()
    quality = ["stale" if s else "ok" for s in batch.stale.tolist()]
    nulls: list[float | None] = [None] * n
    normalized = batch.columns.get("normalized")
    moving_avg = batch.columns.get("moving_avg")
    return list(
        zip(
            ids,
            batch.seq.tolist(),
            _timestamps(batch.ts.tolist()),
            batch.value.tolist(),
            units,
            quality,
            normalized.tolist() if normalized is not None else nulls,
            moving_avg.tolist() if moving_avg is not None else nulls,
            strict=True,
        )
    )


def feature_records(batch: Batch) -> list[tuple[Any, ...]]:
    """One tuple per `kind="features"` derived record; other kinds (alerts) are not stored."""
    return [
        tuple(record.get(field) for field in _FEATURE_FIELDS)
        for record in batch.derived
        if record.get("kind") == "features"
    ]
