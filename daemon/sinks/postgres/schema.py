"""The documented tables and the SQL that writes them, in one place.

Why the column lists live here as data: the target DDL, the per-connection staging tables and
the `INSERT ... SELECT` that moves rows across must agree column for column; generating all three
from one tuple makes a mismatch impossible. Staging tables are `TEMP ... ON COMMIT DELETE ROWS`:
private to a connection, emptied by every commit or rollback, so a batch never sees another's
rows and a failed transaction leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.stages.features.window_math import FEATURE_NAMES

Columns = tuple[tuple[str, str], ...]

READING_COLUMNS: Columns = (
    ("sensor_id", "text NOT NULL"),
    ("seq", "bigint NOT NULL"),
    ("ts", "timestamptz NOT NULL"),
    ("value", "double precision"),
    ("unit", "text"),
    ("quality", "text"),
    ("normalized", "double precision"),
    ("moving_avg", "double precision"),
)
READING_KEY = ("sensor_id", "seq")

FEATURE_COLUMNS: Columns = (
    ("sensor_id", "text NOT NULL"),
    ("window_end_seq", "bigint NOT NULL"),
    ("count", "integer"),
    *((name, "double precision") for name in FEATURE_NAMES),
)
FEATURE_KEY = ("sensor_id", "window_end_seq")

STAGE_READINGS = "_ingestd_stage_readings"
STAGE_FEATURES = "_ingestd_stage_features"


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted so any table name from the config is taken literally."""
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def names(columns: Columns) -> list[str]:
    return [name for name, _ in columns]


def _body(columns: Columns) -> str:
    return ", ".join(f"{quote(name)} {kind}" for name, kind in columns)


def create_target(target: str, columns: Columns, key: tuple[str, ...]) -> str:
    keys = ", ".join(map(quote, key))
    return f"CREATE TABLE IF NOT EXISTS {target} ({_body(columns)}, PRIMARY KEY ({keys}))"


def create_staging(stage: str, columns: Columns) -> str:
    # No NOT NULL here: the target enforces its own constraints, and a refused row must fail
    # at the INSERT (an integrity error: permanent), never at the COPY.
    body = ", ".join(f"{quote(name)} {kind.replace(' NOT NULL', '')}" for name, kind in columns)
    return f"CREATE TEMP TABLE IF NOT EXISTS {quote(stage)} ({body}) ON COMMIT DELETE ROWS"


def insert_from_staging(target: str, stage: str, columns: Columns) -> str:
    cols = ", ".join(quote(n) for n in names(columns))
    return f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {quote(stage)} ON CONFLICT DO NOTHING"


@dataclass(frozen=True)
class Tables:
    """The qualified names and statements of one sink's two target tables."""

    readings: str
    features: str
    # (schema or None, table) unquoted, as asyncpg's copy_records_to_table takes them
    readings_name: tuple[str | None, str]
    features_name: tuple[str | None, str]

    @classmethod
    def of(cls, schema: str, readings: str, features: str) -> Tables:
        return cls(
            qualified(schema, readings),
            qualified(schema, features),
            (schema or None, readings),
            (schema or None, features),
        )

    def create(self) -> list[str]:
        return [
            create_target(self.readings, READING_COLUMNS, READING_KEY),
            create_target(self.features, FEATURE_COLUMNS, FEATURE_KEY),
        ]

    @staticmethod
    def staging() -> list[str]:
        return [
            create_staging(STAGE_READINGS, READING_COLUMNS),
            create_staging(STAGE_FEATURES, FEATURE_COLUMNS),
        ]

    def insert_readings(self) -> str:
        return insert_from_staging(self.readings, STAGE_READINGS, READING_COLUMNS)

    def insert_features(self) -> str:
        return insert_from_staging(self.features, STAGE_FEATURES, FEATURE_COLUMNS)
