"""Making the target tables ready at the first connection: created if missing, and the readings
table a TimescaleDB hypertable when asked for and possible.

Why the hypertable is keyed `(sensor_id, seq, ts)`: TimescaleDB refuses a unique index without
the partitioning column, so a hypertable cannot keep the plain `(sensor_id, seq)` key. Adding
`ts` keeps idempotence: a replayed or redelivered reading carries its original `ts`, so it still
meets its own row. The key is chosen only when the table is created here; a table that exists
already keeps its key, and if TimescaleDB refuses to convert it the reason is logged
(`hypertable_skipped`) and the sink goes on with the plain table, like without the extension.

Why skipping is a warning, not a config error: whether the extension is installed is a fact
about the database at run time, not about the config (the same file runs against a dev database
without it); the readings land either way, only the storage layout differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.postgres.schema import HYPERTABLE_KEY, READING_COLUMNS, Tables, create_target

if TYPE_CHECKING:
    from daemon.sinks.postgres.sink import PostgresConfig

TIMESCALE_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
# The readings table ($1, its qualified name) partitioned by ts; a no-op when it is one already.
CREATE_HYPERTABLE = (
    "SELECT create_hypertable($1::regclass, 'ts', if_not_exists => true, migrate_data => true)"
)


async def timescale_version(conn: Any) -> str | None:
    """The installed TimescaleDB extension's version in this database, or None."""
    version: str | None = await conn.fetchval(TIMESCALE_VERSION)
    return version


async def prepare(conn: Any, config: PostgresConfig, tables: Tables, ctx: ComponentContext) -> None:
    """Create the missing tables (`create_tables`) and make readings a hypertable
    (`hypertable`), logging one `hypertable_skipped` when it cannot be."""
    version = await timescale_version(conn) if config.hypertable else None
    if config.create_tables:
        for target in tables.all():
            statement = target.create
            if target is tables.readings and version is not None:
                statement = create_target(target.table, READING_COLUMNS, HYPERTABLE_KEY)
            await conn.execute(statement)
    if not config.hypertable:
        return
    if version is None:
        ctx.log.warning(
            events.HYPERTABLE_SKIPPED,
            sink=ctx.label,
            table=tables.readings.table,
            reason="the timescaledb extension is not installed in this database",
            action="readings go to a plain table",
        )
        return
    try:
        async with conn.transaction():
            await conn.execute(CREATE_HYPERTABLE, tables.readings.table)
    except asyncpg.PostgresError as exc:  # e.g. an existing table keyed without ts
        ctx.log.warning(
            events.HYPERTABLE_SKIPPED,
            sink=ctx.label,
            table=tables.readings.table,
            reason=f"create_hypertable refused: {type(exc).__name__}: {exc}",
            action="readings go to a plain table",
        )
        return
    ctx.log.info(
        events.HYPERTABLE_CREATED, sink=ctx.label, table=tables.readings.table, timescaledb=version
    )
