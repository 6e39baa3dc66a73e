"""The documented tables and the SQL that writes them, in one place.

Why the column lists live here as data: the target DDL, the per-connection staging tables, the
`INSERT ... SELECT` that moves rows across and the row-by-row isolation must agree column for
column; generating all of them from one tuple makes a mismatch impossible.

The tables (created if missing when `create_tables`, the default):

    readings (sensor_id text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT NULL,
              value double precision, unit text, quality text,
              normalized double precision, moving_avg double precision,
              PRIMARY KEY (sensor_id, seq))            -- (sensor_id, seq, ts) as a hypertable
    features (sensor_id text NOT NULL, window_end_seq bigint NOT NULL, count integer,
              mean, std, min, max, slope, p95, dominant_hz, anomaly_score double precision,
              PRIMARY KEY (sensor_id, window_end_seq))
    alerts   (sensor_id text NOT NULL, rule text NOT NULL, state text NOT NULL,
              since timestamptz NOT NULL, ts timestamptz, value double precision,
              PRIMARY KEY (sensor_id, rule, since, state))

Why alerts are keyed `(sensor_id, rule, since, state)`: an alert episode of a sensor under a
rule begins at `since` and has at most one `firing` and one `resolved` record, so the key names
each record exactly once and a replayed or redelivered batch lands none twice.

Staging tables are `TEMP ... ON COMMIT DELETE ROWS`: private to a connection, emptied by every
commit or rollback, so a batch never sees another's rows and a failed transaction leaves nothing
behind. Each has one more column, `_ingestd_row`, the row's index in its batch, filled only when
a batch is isolated row by row (`isolate`), so the database can say which rows it refused.
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
# TimescaleDB wants the time column in every unique index of a hypertable: the same readings,
# still one row per (sensor_id, seq) since a replayed reading carries its original ts.
HYPERTABLE_KEY = ("sensor_id", "seq", "ts")

FEATURE_COLUMNS: Columns = (
    ("sensor_id", "text NOT NULL"),
    ("window_end_seq", "bigint NOT NULL"),
    ("count", "integer"),
    *((name, "double precision") for name in FEATURE_NAMES),
)
FEATURE_KEY = ("sensor_id", "window_end_seq")

ALERT_COLUMNS: Columns = (
    ("sensor_id", "text NOT NULL"),
    ("rule", "text NOT NULL"),
    ("state", "text NOT NULL"),
    ("since", "timestamptz NOT NULL"),
    ("ts", "timestamptz"),
    ("value", "double precision"),
)
ALERT_KEY = ("sensor_id", "rule", "since", "state")

ROW = "_ingestd_row"  # a staging row's index in its batch (isolation only)
REFUSED = "_ingestd_refused"  # per connection: the rows the isolation refused, and why
INSERTED_SETTING = "ingestd.inserted"  # transaction-local: how many rows the isolation inserted


def quote(identifier: str) -> str:
    """A SQL identifier, double-quoted so any table name from the config is taken literally."""
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def names(columns: Columns) -> tuple[str, ...]:
    return tuple(name for name, _ in columns)


def create_target(target: str, columns: Columns, key: tuple[str, ...]) -> str:
    body = ", ".join(f"{quote(name)} {kind}" for name, kind in columns)
    keys = ", ".join(map(quote, key))
    return f"CREATE TABLE IF NOT EXISTS {target} ({body}, PRIMARY KEY ({keys}))"


def create_staging(stage: str, columns: Columns) -> str:
    # No NOT NULL here: the target enforces its own constraints, and a refused row must fail
    # at the INSERT (an integrity error, isolated row by row), never at the COPY.
    body = ", ".join(f"{quote(name)} {kind.replace(' NOT NULL', '')}" for name, kind in columns)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {quote(stage)} ({body}, {quote(ROW)} integer)"
        " ON COMMIT DELETE ROWS"
    )


def create_refused() -> str:
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {quote(REFUSED)}"
        " (row_index integer, sqlstate text, message text) ON COMMIT DELETE ROWS"
    )


def take_refused() -> str:
    """The refused rows of the last isolation, emptying the table for the next target."""
    return f"DELETE FROM {quote(REFUSED)} RETURNING row_index, sqlstate, message"


def insert_from_staging(target: str, stage: str, columns: Columns) -> str:
    cols = ", ".join(quote(n) for n in names(columns))
    return f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {quote(stage)} ON CONFLICT DO NOTHING"


def isolate(target: str, stage: str, columns: Columns) -> str:
    """A DO block inserting the staged rows one at a time, each in its own subtransaction:
    a row the table refuses (SQLSTATE class 22 or 23) is noted in `_ingestd_refused` with the
    database's reason, and the others land. One round trip whatever the number of refused rows
    (a client-side bisection costs one per probe); the rare path, so its per-row cost is fine.
    How many rows it inserted goes to the transaction-local setting `ingestd.inserted`."""
    cols = ", ".join(quote(n) for n in names(columns))
    values = ", ".join(f"r.{quote(n)}" for n in names(columns))
    body = f"""
DECLARE
  r record;
  n bigint;
  inserted bigint := 0;
BEGIN
  FOR r IN SELECT * FROM {quote(stage)} ORDER BY {quote(ROW)} LOOP
    BEGIN
      INSERT INTO {target} ({cols}) VALUES ({values}) ON CONFLICT DO NOTHING;
      GET DIAGNOSTICS n = ROW_COUNT;
      inserted := inserted + n;
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
      INSERT INTO {quote(REFUSED)} VALUES (r.{quote(ROW)}, SQLSTATE, SQLERRM);
    END;
  END LOOP;
  PERFORM set_config('{INSERTED_SETTING}', inserted::text, true);
END
"""
    tag = "$ingestd$"
    while tag in body:  # a table name holding the tag would end the block early
        tag = tag[:-1] + "_$"
    return f"DO {tag}{body}{tag}"


@dataclass(frozen=True)
class Target:
    """One target table: where a kind of record goes, and every statement that writes it."""

    table: str  # qualified and quoted
    name: tuple[str | None, str]  # (schema or None, table) unquoted, as asyncpg takes it
    stage: str  # the connection's staging table (unquoted: asyncpg quotes it)
    columns: tuple[str, ...]
    create: str
    insert: str
    isolate: str

    @classmethod
    def of(
        cls, schema: str, table: str, stage: str, columns: Columns, key: tuple[str, ...]
    ) -> Target:
        target = qualified(schema, table)
        return cls(
            target,
            (schema or None, table),
            stage,
            names(columns),
            create_target(target, columns, key),
            insert_from_staging(target, stage, columns),
            isolate(target, stage, columns),
        )


@dataclass(frozen=True)
class Tables:
    """The sink's three targets."""

    readings: Target
    features: Target
    alerts: Target

    @classmethod
    def of(cls, schema: str, readings: str, features: str, alerts: str) -> Tables:
        return cls(
            Target.of(schema, readings, "_ingestd_stage_readings", READING_COLUMNS, READING_KEY),
            Target.of(schema, features, "_ingestd_stage_features", FEATURE_COLUMNS, FEATURE_KEY),
            Target.of(schema, alerts, "_ingestd_stage_alerts", ALERT_COLUMNS, ALERT_KEY),
        )

    def all(self) -> tuple[Target, Target, Target]:
        return (self.readings, self.features, self.alerts)

    def session(self) -> list[str]:
        """What each new connection creates: its staging tables and its refused-rows table."""
        staging = (
            (self.readings, READING_COLUMNS),
            (self.features, FEATURE_COLUMNS),
            (self.alerts, ALERT_COLUMNS),
        )
        return [create_staging(t.stage, columns) for t, columns in staging] + [create_refused()]
