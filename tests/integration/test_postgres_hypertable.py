"""`hypertable = true` against a PostgreSQL without TimescaleDB (this machine's): one clear
warning, a plain table keyed (sensor_id, seq), readings land. The path with the extension is
checked as far as a server without it can: its DDL runs, and its `create_hypertable` call
parses and binds, failing only for the function that is not there."""

from __future__ import annotations

import asyncpg
import pytest
from structlog.testing import capture_logs

from daemon.sinks.postgres.schema import HYPERTABLE_KEY, READING_COLUMNS, create_target, quote
from daemon.sinks.postgres.tables import CREATE_HYPERTABLE, timescale_version
from tests.postgres_support import PgTables, readings

pytestmark = pytest.mark.server("postgres")


async def _primary_key(db: asyncpg.Connection, table: str) -> list[str]:
    rows = await db.fetch(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = $1::regclass AND i.indisprimary"
        " ORDER BY array_position(i.indkey, a.attnum)",
        quote(table),
    )
    return [r["attname"] for r in rows]


async def test_without_timescaledb_it_warns_once_and_writes_a_plain_table(
    tables: PgTables, db: asyncpg.Connection
) -> None:
    assert await timescale_version(db) is None  # the premise: not installed here
    sink = tables.sink(hypertable=True)
    with capture_logs() as logs:
        await sink.open()
        await sink.write(readings("HT1", range(10)))
        await sink.write(readings("HT1", range(10, 20)))
        await sink.close()
    skipped = [e for e in logs if e["event"] == "hypertable_skipped"]
    assert len(skipped) == 1
    assert skipped[0]["log_level"] == "warning"
    assert "timescaledb extension is not installed" in skipped[0]["reason"]
    assert skipped[0]["table"] == quote(tables.readings)
    assert await _primary_key(db, tables.readings) == ["sensor_id", "seq"]
    assert await db.fetchval(f'SELECT count(*) FROM "{tables.readings}"') == 20


async def test_the_hypertable_ddl_and_call_are_valid_sql(
    tables: PgTables, db: asyncpg.Connection
) -> None:
    await db.execute(create_target(quote(tables.readings), READING_COLUMNS, HYPERTABLE_KEY))
    assert await _primary_key(db, tables.readings) == ["sensor_id", "seq", "ts"]
    with pytest.raises(asyncpg.UndefinedFunctionError) as missing:
        await db.execute(CREATE_HYPERTABLE, quote(tables.readings))
    # the statement parsed and its table resolved; only TimescaleDB's function is missing
    assert "create_hypertable(regclass, unknown" in str(missing.value)
