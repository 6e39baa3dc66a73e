"""`postgres`: readings, feature records and alerts into PostgreSQL, idempotent per batch.

Guarantees, and why they hold:
- One transaction per batch: its readings (`table`), its `kind="features"` records
  (`features_table`) and its `kind="alert"` records (`alerts_table`) are binary-COPYed and
  committed together; `write()` returns only after COMMIT, so `flush()` has nothing left to do.
  The tables and their keys are in `schema.py`.
- Idempotent: every table has a primary key, and a batch that meets a row already there (a
  replay from the spool, a retry whose commit was in fact applied) goes through a staging table
  and `INSERT ... ON CONFLICT DO NOTHING`, so it lands no row twice (`copying.py`: direct COPY
  first, the staged path only after a conflict, and for the next `_STAGED_AFTER_CONFLICT`
  batches at once, since replays come in runs).
- A refused row costs only itself. What the database refuses (SQLSTATE class 22, a data
  exception, or 23, an integrity violation: a CHECK, NOT NULL) is isolated row by row inside the
  same transaction; the rest of the batch commits, and `RowsRefused` names the refused readings
  with the database's reason: the guard dead-letters those, counted `rejected`, and the others
  count `written`. Readings no column could take (a `ts` that is not finite) are refused the
  same way before any COPY (`pgcopy.py`). Refused derived records are not readings: they go to
  the dead-letter file uncounted (`ctx.quarantine`), with the reason.
- Errors say what a retry can do. Everything that is not a refusal (a lost or refused
  connection, admin shutdown, a timeout, a missing table) is `SinkError`: the guard retries,
  opens the breaker and spools. The transaction is rolled back, so a failed batch leaves nothing.
- A server that is down never stops the daemon: `open()` logs and leaves connecting to the
  first write, which raises `SinkError` until the server answers. Writes use one connection,
  held from write to write (`link.py`); one that failed (killed by `pg_terminate_backend`, a
  restart, a write cut by its deadline) is terminated, and the next write connects anew.
- `hypertable = true` makes the readings table a TimescaleDB hypertable when the extension is
  installed in the database, else logs `hypertable_skipped` once and goes on (`tables.py`).

Writes are one at a time (the guard serialises them), so batches reach the tables in order and
each batch is one transaction; `pool_size` bounds the connections the pool may open, it does
not put several batches in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg

from daemon.batch import Batch
from daemon.components import PermanentSinkError, RowsRefused, Sink, SinkError
from daemon.config.fields import Range
from daemon.config.types import Secret
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.postgres import copying, rows
from daemon.sinks.postgres.copying import Mode, ReadingLoad, RecordLoad, Stored
from daemon.sinks.postgres.link import Link
from daemon.sinks.postgres.schema import Tables, Target
from daemon.sinks.postgres.tables import prepare

__all__ = ["PostgresConfig", "PostgresSink"]

_STAGED_AFTER_CONFLICT = 16
# What the driver raises for the server, the connection or itself (a protocol state a killed
# connection left behind: InternalClientError); all of it becomes a SinkError.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class PostgresConfig:
    """The `postgres` sink's keys."""

    dsn: Annotated[Secret, "libpq-style URL, e.g. postgresql://user@host:5432/db"]
    table: Annotated[str, "readings table, keyed (sensor_id, seq)"] = "readings"
    features_table: Annotated[str, "features table, keyed (sensor_id, window_end_seq)"] = "features"
    alerts_table: Annotated[str, "alerts table, keyed (sensor_id, rule, since, state)"] = "alerts"
    schema: Annotated[str, "schema of the tables (empty: the search_path)"] = ""
    create_tables: Annotated[bool, "create the tables if missing (at the first connection)"] = True
    hypertable: Annotated[
        bool, "make the readings table a TimescaleDB hypertable (if the extension is installed)"
    ] = False
    pool_size: Annotated[int, Range(ge=1, le=64), "connections in the pool at most"] = 2
    connect_timeout_s: Annotated[
        float, Range(gt=0), "connecting or waiting for a pooled connection, at most"
    ] = 5.0
    application_name: Annotated[
        str, "application_name of the sessions (pg_stat_activity shows it)"
    ] = "ingestd"

    def check(self) -> list[tuple[str, str]]:
        keys = ("table", "features_table", "alerts_table")
        issues = [(key, "must not be empty") for key in keys if not getattr(self, key).strip()]
        named = [getattr(self, key) for key in keys]
        for key in keys[1:]:
            if named.count(getattr(self, key)) > 1:
                issues.append(
                    (key, f"must differ from the other tables, got {getattr(self, key)!r}")
                )
        if not self.dsn.reveal().strip():
            issues.append(("dsn", "must not be empty"))
        return issues


def classify(exc: BaseException) -> SinkError:
    """The `SinkError` (permanent or not) that says what a retry of `exc` can do."""
    message = f"postgres: {type(exc).__name__}: {exc}"
    if copying.refuses(exc):
        return PermanentSinkError(message)
    return SinkError(message)


class PostgresSink(Sink[PostgresConfig], name="postgres"):
    """Writes readings, feature records and alerts by binary COPY, one transaction a batch."""

    def __init__(self, config: PostgresConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.tables = Tables.of(
            config.schema, config.table, config.features_table, config.alerts_table
        )
        self._link = Link(
            config.dsn,
            pool_size=config.pool_size,
            timeout_s=config.connect_timeout_s,
            application_name=config.application_name,
            init=self._init_connection,
        )
        self._tables_ready = False
        self._staged_left = 0  # batches still to stage before trying a direct COPY again
        self._gauge = ctx.gauge()
        self._gauge.update(
            readings=0, duplicates=0, refused=0, features=0, alerts=0, batches=0, mode="direct"
        )

    async def open(self) -> None:
        try:
            await self._ready()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    async def write(self, batch: Batch) -> None:
        readings = ReadingLoad(batch)
        features = rows.feature_records(batch)
        alerts = rows.alert_records(batch)
        t = self.tables
        loads: list[tuple[copying.Load, Target]] = [
            (readings, t.readings),
            (RecordLoad(features, t.features.columns), t.features),
            (RecordLoad(alerts, t.alerts.columns), t.alerts),
        ]
        stored = [Stored(), Stored(), Stored()]
        if any(load.rows for load, _ in loads):
            stored = await self._commit(loads)
        self._account(readings, stored)
        self._quarantine(features, stored[1])
        self._quarantine(alerts, stored[2])
        refused = readings.payload.refused | stored[0].refused
        if refused:
            raise RowsRefused(dict(sorted(refused.items())))

    async def flush(self) -> None:
        """Nothing to do: `write` returns after COMMIT."""

    async def close(self) -> None:
        try:
            await self._link.close()
        except _DRIVER_ERRORS as exc:
            self.ctx.log.warning(events.SINK_CLOSE_FAILED, sink=self.ctx.label, error=str(exc))

    # -- internals ---------------------------------------------------------------------------

    async def _commit(self, loads: list[tuple[copying.Load, Target]]) -> list[Stored]:
        """Write `loads` in one transaction (`copying.write`); driver errors as SinkErrors."""
        conn = await self._ready()
        start = Mode.STAGED if self._staged_left else Mode.DIRECT
        try:
            try:
                modes, stored = await copying.write(conn, loads, start)
            except asyncio.CancelledError:
                self._link.drop()  # cut mid-statement: its protocol state is unknown
                raise
            except _DRIVER_ERRORS as exc:
                if not copying.refuses(exc):
                    self._link.drop()  # a broken session (killed, half-rolled-back)
                if _being_cancelled():
                    # asyncpg turned the cancellation (the guard's deadline) into its own
                    # error ("another operation is in progress", rolling back over a COPY
                    # cut short): the guard must still see the write cut, not failed
                    raise asyncio.CancelledError from exc
                raise
        except _DRIVER_ERRORS as exc:
            if getattr(exc, "sqlstate", "") == "42P01":  # undefined table: dropped under us
                self._tables_ready = False
            raise classify(exc) from exc
        if start is Mode.STAGED:
            self._staged_left -= 1
        elif Mode.STAGED in modes:  # a conflict: replays come in runs, stage the next ones
            self._staged_left = _STAGED_AFTER_CONFLICT
        self._gauge["mode"] = modes[-1].value
        return stored

    def _account(self, readings: ReadingLoad, stored: list[Stored]) -> None:
        gauge = self._gauge
        reading = stored[0]
        refused = len(readings.payload.refused) + len(reading.refused)
        gauge["readings"] += reading.inserted
        gauge["duplicates"] += readings.rows - reading.inserted - len(reading.refused)
        gauge["refused"] += refused
        gauge["features"] += stored[1].inserted
        gauge["alerts"] += stored[2].inserted
        gauge["batches"] += 1

    def _quarantine(self, records: rows.Records, stored: Stored) -> None:
        """Derived records refused (before the COPY or by the table): in the dead-letter file
        with the reason, uncounted (they are not readings), never dropped unseen."""
        refused = records.refused + [(records.sources[i], why) for i, why in stored.refused.items()]
        for record, reason in refused:
            self.ctx.quarantine(reason, record)
        if refused:
            self.ctx.log.warning(
                events.SINK_REJECTED,
                sink=self.ctx.label,
                readings=0,
                records=len(refused),
                reason=refused[0][1],
            )

    async def _ready(self) -> Any:
        """The connection to write on, connecting and (once) preparing the tables first."""
        try:
            conn = await self._link.connection()
            if not self._tables_ready:
                await prepare(conn, self.config, self.tables, self.ctx)
                await self._init_connection(conn)  # a staging table may be what went missing
                self._tables_ready = True
        except _DRIVER_ERRORS as exc:
            self._link.drop()
            raise SinkError(f"postgres: cannot connect: {type(exc).__name__}: {exc}") from exc
        return conn

    async def _init_connection(self, conn: Any) -> None:
        """Every new pooled connection gets its staging tables (TEMP: one set per session)."""
        for statement in self.tables.session():
            await conn.execute(statement)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
