"""`postgres`: readings and feature records into PostgreSQL, idempotent per batch.

Guarantees, and why they hold:
- One transaction per batch: the readings (and the batch's `kind="features"` records) are
  binary-COPYed (`copy_records_to_table`) into per-connection TEMP staging tables, then moved by
  `INSERT ... SELECT ... ON CONFLICT DO NOTHING` into the targets keyed `(sensor_id, seq)` and
  `(sensor_id, window_end_seq)`. COPY is the fastest way in; the staging step is what makes it
  idempotent, since COPY itself cannot skip duplicates. Because that INSERT costs ~2.5x the
  COPY, a batch is first COPYed straight into the target in a savepoint; only a unique
  violation (some row already there) sends it through staging (see `_copy`). A batch replayed
  from the spool or written again after a retry whose commit was in fact applied lands no row
  twice. `write()` returns
  only after COMMIT, so `flush()` has nothing left to do.
- Errors say what a retry can do. SQLSTATE class 22 (data exception: a value out of range, bad
  encoding) and 23 (integrity: a check or NOT NULL violation) are the database refusing these
  rows: `PermanentSinkError`, the guard dead-letters the batch. Everything else (a lost or
  refused connection, admin shutdown, a timeout, a missing table) is `SinkError`: the guard
  retries, opens the breaker and spools. The transaction is rolled back either way, so a failed
  batch leaves nothing behind.
- A server that is down never stops the daemon: `open()` logs and leaves the pool to the first
  write, which raises `SinkError` until the server answers. The pool replaces connections the
  server dropped (`pg_terminate_backend`, a restart) on the next acquire.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg

from daemon.batch import Batch
from daemon.components import PermanentSinkError, Sink, SinkError
from daemon.config.fields import Range
from daemon.config.types import Secret
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.postgres import rows
from daemon.sinks.postgres.schema import (
    FEATURE_COLUMNS,
    READING_COLUMNS,
    STAGE_FEATURES,
    STAGE_READINGS,
    Tables,
    names,
)

__all__ = ["PostgresConfig", "PostgresSink"]

_PERMANENT_CLASSES = ("22", "23")  # data exception, integrity constraint violation
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
_READING_NAMES = names(READING_COLUMNS)
_FEATURE_NAMES = names(FEATURE_COLUMNS)


@dataclass(frozen=True)
class PostgresConfig:
    """The `postgres` sink's keys."""

    dsn: Annotated[Secret, "libpq-style URL, e.g. postgresql://user@host:5432/db"]
    table: Annotated[str, "readings table, keyed (sensor_id, seq)"] = "readings"
    features_table: Annotated[str, "features table, keyed (sensor_id, window_end_seq)"] = "features"
    schema: Annotated[str, "schema of both tables (empty: the search_path)"] = ""
    create_tables: Annotated[bool, "create the tables if missing (at the first connection)"] = True
    pool_size: Annotated[int, Range(ge=1, le=64), "connections in the pool at most"] = 2
    connect_timeout_s: Annotated[
        float, Range(gt=0), "connecting or waiting for a pooled connection, at most"
    ] = 5.0
    application_name: Annotated[
        str, "application_name of the sessions (pg_stat_activity shows it)"
    ] = "ingestd"

    def check(self) -> list[tuple[str, str]]:
        issues = [
            (key, "must not be empty")
            for key in ("table", "features_table")
            if not getattr(self, key).strip()
        ]
        if not self.dsn.reveal().strip():
            issues.append(("dsn", "must not be empty"))
        return issues


@dataclass(frozen=True)
class _Target:
    """Where one kind of record goes: the table, its staging table, columns, the move."""

    name: tuple[str | None, str]  # (schema or None, table), unquoted, as asyncpg takes it
    stage: str
    columns: list[str]
    insert: str


def classify(exc: BaseException) -> SinkError:
    """The `SinkError` (permanent or not) that says what a retry of `exc` can do."""
    state = str(getattr(exc, "sqlstate", "") or "")
    message = f"postgres: {type(exc).__name__}: {exc}"
    if state[:2] in _PERMANENT_CLASSES:
        return PermanentSinkError(message)
    return SinkError(message)


class PostgresSink(Sink[PostgresConfig], name="postgres"):
    """Writes readings and feature records by binary COPY through staging tables."""

    def __init__(self, config: PostgresConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.tables = Tables.of(config.schema, config.table, config.features_table)
        t = self.tables
        self._readings = _Target(
            t.readings_name, STAGE_READINGS, _READING_NAMES, t.insert_readings()
        )
        self._features = _Target(
            t.features_name, STAGE_FEATURES, _FEATURE_NAMES, t.insert_features()
        )
        self._pool: Any = None  # asyncpg.Pool, made on open or on the first write after
        self._tables_ready = False
        self._staged_left = 0  # batches still to stage before trying a direct COPY again
        self._lock = asyncio.Lock()
        self._gauge = ctx.gauge()
        self._gauge.update(readings=0, duplicates=0, features=0, batches=0)

    async def open(self) -> None:
        try:
            await self._ready_pool()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    async def write(self, batch: Batch) -> None:
        readings = rows.reading_records(batch)
        features = rows.feature_records(batch)
        if not readings and not features:
            return
        pool = await self._ready_pool()
        try:
            async with pool.acquire(timeout=self.config.connect_timeout_s) as conn:
                try:
                    inserted, stored = await self._transaction(conn, readings, features)
                except _DRIVER_ERRORS as exc:
                    if not isinstance(classify(exc), PermanentSinkError):
                        # a broken session (killed, half-rolled-back) is dropped, not pooled
                        conn.terminate()
                    raise
        except _DRIVER_ERRORS as exc:
            if getattr(exc, "sqlstate", "") == "42P01":  # undefined table: dropped under us
                self._tables_ready = False
            raise classify(exc) from exc
        gauge = self._gauge
        gauge["readings"] += inserted
        gauge["duplicates"] += len(readings) - inserted
        gauge["features"] += stored
        gauge["batches"] += 1

    async def flush(self) -> None:
        """Nothing to do: `write` returns after COMMIT."""

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.config.connect_timeout_s)
        except _DRIVER_ERRORS as exc:
            self.ctx.log.warning(events.SINK_CLOSE_FAILED, sink=self.ctx.label, error=str(exc))
            pool.terminate()

    # -- internals ---------------------------------------------------------------------------

    async def _transaction(
        self, conn: Any, readings: list[tuple[Any, ...]], features: list[tuple[Any, ...]]
    ) -> tuple[int, int]:
        """Write both kinds in one transaction, commit; the rows inserted of each."""
        async with conn.transaction():
            inserted = await self._copy(conn, readings, self._readings)
            stored = await self._copy(conn, features, self._features)
        return inserted, stored

    async def _copy(
        self,
        conn: Any,
        records: list[tuple[Any, ...]],
        target: _Target,
    ) -> int:
        """COPY `records` straight into `target` inside a savepoint: new rows (the common case)
        cost one COPY, as fast as `psql \\copy`. If any row is already there (a replay, a
        redelivery) the savepoint is rolled back and the rows go through the staging table and
        `INSERT ... ON CONFLICT DO NOTHING` (measured: ~2.5x slower, so it is the fallback); the
        next `_STAGED_AFTER_CONFLICT` batches go that way at once, since replays come in runs."""
        if not records:
            return 0
        if self._staged_left == 0:
            schema_name, table = target.name
            try:
                async with conn.transaction():  # a savepoint
                    await conn.copy_records_to_table(
                        table, records=records, columns=target.columns, schema_name=schema_name
                    )
                return len(records)
            except asyncpg.UniqueViolationError:
                self._staged_left = _STAGED_AFTER_CONFLICT
        else:
            self._staged_left -= 1
        await conn.copy_records_to_table(target.stage, records=records, columns=target.columns)
        return _count(await conn.execute(target.insert))

    async def _ready_pool(self) -> Any:
        """The pool, creating it and (once) the target tables first if needed."""
        if self._pool is not None and self._tables_ready:
            return self._pool
        async with self._lock:
            try:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.config.dsn.reveal(),
                        min_size=1,
                        max_size=self.config.pool_size,
                        timeout=self.config.connect_timeout_s,
                        server_settings={"application_name": self.config.application_name},
                        init=_init_connection,
                    )
                if not self._tables_ready:
                    if self.config.create_tables:
                        async with self._pool.acquire() as conn:
                            for statement in self.tables.create():
                                await conn.execute(statement)
                    self._tables_ready = True
            except _DRIVER_ERRORS as exc:
                raise SinkError(f"postgres: cannot connect: {type(exc).__name__}: {exc}") from exc
        return self._pool


async def _init_connection(conn: Any) -> None:
    """Every new pooled connection gets its staging tables (TEMP: one set per session)."""
    for statement in Tables.staging():
        await conn.execute(statement)


def _count(status: str) -> int:
    """The row count of a command tag such as `INSERT 0 512`."""
    return int(status.rsplit(" ", 1)[-1])
